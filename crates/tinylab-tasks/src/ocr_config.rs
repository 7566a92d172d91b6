//! The configuration of the [`Ocr`](crate::Ocr) task and its world: which city each name lives
//! in and which animal each city implies, drawn from `world_seed` alone (never from the batch
//! RNG).

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::TaskRng;

/// How the world (name → city → animal) is built from `world_seed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OcrWorldKind {
    /// The code's default (`random_draw = False`): name `i` → city `i mod C`, city `j` →
    /// animal `j mod A` (a bijection when `C = A`); `world_seed` is not used.
    #[default]
    Ordered,
    /// The code's `random_draw = True`: the city and animal lists are permuted with
    /// `world_seed`, then name `i` → `cities[i mod C]` and `cities[j]` → `animals[j mod A]`.
    Shuffled,
    /// Names → cities as `shuffled`; each city's animal is drawn independently and uniformly
    /// (random pairs: two cities may imply the same animal). Not in the official code.
    Spurious,
}

/// Which sequences a batch holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OcrSplit {
    /// The code's `mixed_finetune` batch: `⌊B/3⌋` train-name facts, `⌊B/3⌋` train-name
    /// implications and the remaining `B - 2⌊B/3⌋` test-name facts, rows shuffled.
    /// Test-name implications are never in it.
    #[default]
    Train,
    /// Facts (`rel_lives`, target the city) of train names.
    TrainFacts,
    /// Implications (`rel_animal`, target the animal) of train names.
    TrainImplications,
    /// Facts of test names.
    TestFacts,
    /// Implications of test names: the out-of-context reasoning test.
    TestImplications,
}

/// Sizes of an [`Ocr`](crate::Ocr) task (`kind = "ocr"`); the defaults are those of the code's
/// `scripts/train_attn1_1heads.sh`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OcrConfig {
    /// Number of names `N` (default 80).
    pub num_name: usize,
    /// Number of cities `C` (default 20).
    pub num_city: usize,
    /// Number of animals `A` (default 20).
    pub num_animal: usize,
    /// Number of noise tokens (default 5).
    pub num_noise: usize,
    /// Sequence length `T` (default 16): `T-3` noise tokens, the name, the relation, `eos`.
    pub seq_len: usize,
    /// Fraction of names that are train names (the code's `train_test_split`, default 0.25):
    /// names `0..⌊N·train_frac⌋`; the others are test names.
    pub train_frac: f64,
    /// How the world is built (default `ordered`, as the code).
    pub world: OcrWorldKind,
    /// Seed of the world (for `shuffled` and `spurious`), independent of the batch RNG, so
    /// that training and evaluation sets share one world.
    pub world_seed: u64,
    /// Which sequences a batch holds (default `train`).
    pub split: OcrSplit,
}

impl Default for OcrConfig {
    fn default() -> Self {
        Self {
            num_name: 80,
            num_city: 20,
            num_animal: 20,
            num_noise: 5,
            seq_len: 16,
            train_frac: 0.25,
            world: OcrWorldKind::Ordered,
            world_seed: 0,
            split: OcrSplit::Train,
        }
    }
}

/// The facts of one world, by index (name `0..N`, city `0..C`, animal `0..A`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OcrWorld {
    name_city: Vec<usize>,
    city_animal: Vec<usize>,
}

impl OcrWorld {
    /// Builds the world of `cfg` (sizes validated by [`Ocr::new`](crate::Ocr::new)).
    ///
    /// # Panics
    /// If `num_city` or `num_animal` is 0.
    pub fn new(cfg: &OcrConfig) -> Self {
        let (n, c, a) = (cfg.num_name, cfg.num_city, cfg.num_animal);
        let mut rng = TaskRng::seed_from_u64(cfg.world_seed);
        let mut cities: Vec<usize> = (0..c).collect();
        let mut animals: Vec<usize> = (0..a).collect();
        if cfg.world != OcrWorldKind::Ordered {
            cities.shuffle(&mut rng);
            animals.shuffle(&mut rng);
        }
        let name_city = (0..n).map(|i| cities[i % c]).collect();
        let mut city_animal = vec![0; c];
        for (j, &city) in cities.iter().enumerate() {
            city_animal[city] = match cfg.world {
                OcrWorldKind::Spurious => rng.gen_range(0..a),
                _ => animals[j % a],
            };
        }
        Self { name_city, city_animal }
    }

    /// The city name `i` lives in.
    pub fn city_of(&self, name: usize) -> usize {
        self.name_city[name]
    }

    /// The animal city `j` implies.
    pub fn animal_of_city(&self, city: usize) -> usize {
        self.city_animal[city]
    }

    /// The animal name `i` implies: `animal_of_city(city_of(i))`.
    pub fn animal_of(&self, name: usize) -> usize {
        self.city_animal[self.name_city[name]]
    }
}
