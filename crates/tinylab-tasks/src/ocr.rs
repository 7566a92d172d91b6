//! Out-of-context reasoning (OCR) as synthetic factual recall, in the layout of the official
//! code of Huang et al., "Generalization or Hallucination? Understanding Out-of-Context
//! Reasoning in Transformers" (arXiv 2506.10887; `yixiao-huang/OCR-Theory`,
//! `src/data_utils.py` `ImplicitReasoningTask` and the `mixed_finetune` batches of `src/train.py`).

use std::ops::Range;

use rand::seq::SliceRandom;
use rand::Rng;

use crate::config::ensure;
use crate::{Batch, OcrConfig, OcrSplit, OcrWorld, Task, TaskError, TaskRng};

/// Out-of-context reasoning: facts `name rel_lives → city` and implications
/// `name rel_animal → animal(city(name))`, seen only for train names; can the model answer the
/// implication of a test name whose fact alone it saw?
///
/// Vocabulary, in the code's order: `rel_lives` (0, the code's signal 0, "fact") and
/// `rel_animal` (1, signal 1, "implication"), then `city0..`, `animal0..`, `name0..`,
/// `noise0..` and `eos` last; `vocab_size = 2 + C + A + N + num_noise + 1` (128 by default).
///
/// Each sequence, as `get_batch`: a name drawn uniformly from the split's names, `T-3`
/// noise tokens drawn uniformly with replacement, the name inserted at index
/// `randint(0, T-2)` and the relation at `randint(name_index+1, T-1)` (Python `list.insert`,
/// so the largest index appends: the last free slot is twice as likely as each other one),
/// then `eos`. The one label is at the last position (`eos`): the city for `rel_lives`, the
/// animal for `rel_animal`; every other target is [`IGNORE`](crate::IGNORE).
///
/// # Example
/// `num_name = 8, num_city = 2, num_animal = 2, num_noise = 3, seq_len = 8` (2 train names;
/// pinned in the tests, seed 0, `split = "train"`; `.` marks an ignored target). A train-name
/// fact, a train-name implication, a test-name fact (`name3` lives in `city1`, like `name1`):
/// ```text
/// input:  noise2 noise1 noise0 name1 noise0 noise2 rel_lives eos
/// target: .      .      .      .     .      .      .         city1
/// input:  noise1 noise2 name0 noise2 noise1 noise1 rel_animal eos
/// target: .      .      .     .      .      .      .          animal0
/// input:  name3 noise1 noise1 noise2 noise2 noise2 rel_lives eos
/// target: .     .      .      .      .      .      .         city1
/// ```
/// With the defaults (`T = 16`, seed 0, sequence 1):
/// ```text
/// input:  noise3 noise0 noise2 noise3 noise3 noise4 noise4 noise4 name11 noise0 noise2 noise0 noise4 rel_animal noise3 eos
/// target: .      .      .      .      .      .      .      .      .      .      .      .      .      .          .      animal11
/// ```
///
/// # Shapes
/// `inputs` and `targets`: `[batch_size, seq_len]`, one label per sequence (the last position).
#[derive(Debug, Clone)]
pub struct Ocr {
    cfg: OcrConfig,
    world: OcrWorld,
    num_train: usize,
}

impl Ocr {
    /// The fact relation token (`rel_lives`, the code's signal 0).
    pub const REL_LIVES: u32 = 0;
    /// The implication relation token (`rel_animal`, the code's signal 1).
    pub const REL_ANIMAL: u32 = 1;

    /// Validates `cfg` and builds the task and its world.
    ///
    /// # Errors
    /// A count is 0 (`num_name`, `num_city`, `num_animal`; `num_noise` when `seq_len > 3`);
    /// `seq_len < 3`; `train_frac` outside `[0, 1]` or leaving no train name or no test name;
    /// a vocabulary beyond `i32::MAX`.
    pub fn new(cfg: OcrConfig) -> Result<Self, TaskError> {
        for (key, v) in
            [("num_name", cfg.num_name), ("num_city", cfg.num_city), ("num_animal", cfg.num_animal)]
        {
            ensure(v >= 1, key, || "0; need at least 1".into())?;
        }
        ensure(cfg.seq_len >= 3, "seq_len", || {
            format!("{} is too short; need at least 3 (name, relation, eos)", cfg.seq_len)
        })?;
        ensure(cfg.num_noise >= 1 || cfg.seq_len == 3, "num_noise", || {
            format!("0, but seq_len {} needs noise; need ≥ 1 (or seq_len = 3)", cfg.seq_len)
        })?;
        let f = cfg.train_frac;
        ensure(f.is_finite() && (0.0..=1.0).contains(&f), "train_frac", || {
            format!("{f}; must be in [0, 1]")
        })?;
        let num_train = (cfg.num_name as f64 * f).floor() as usize;
        ensure(num_train >= 1 && num_train < cfg.num_name, "train_frac", || {
            format!(
                "{f} of {} names gives {num_train} train and {} test names; need ≥ 1 of each",
                cfg.num_name,
                cfg.num_name - num_train
            )
        })?;
        let vocab = [cfg.num_city, cfg.num_animal, cfg.num_name, cfg.num_noise]
            .iter()
            .try_fold(3usize, |s, &x| s.checked_add(x));
        ensure(vocab.is_some_and(|v| v <= i32::MAX as usize), "num_name", || {
            format!("the vocabulary exceeds {}; use fewer tokens", i32::MAX)
        })?;
        let world = OcrWorld::new(&cfg);
        Ok(Self { cfg, world, num_train })
    }

    /// The validated configuration.
    pub fn config(&self) -> &OcrConfig {
        &self.cfg
    }

    /// The world shared by every split with the same sizes, `world` and `world_seed`.
    pub fn world(&self) -> &OcrWorld {
        &self.world
    }

    /// Train names (by index): `0..⌊N·train_frac⌋`.
    pub fn train_names(&self) -> Range<usize> {
        0..self.num_train
    }

    /// Test names (by index): the others.
    pub fn test_names(&self) -> Range<usize> {
        self.num_train..self.cfg.num_name
    }

    /// Token ids of block `i` of the vocabulary: relations, cities, animals, names, noise.
    fn block(&self, i: usize) -> Range<u32> {
        let c = &self.cfg;
        let sizes = [2, c.num_city, c.num_animal, c.num_name, c.num_noise];
        let start: usize = sizes[..i].iter().sum();
        start as u32..(start + sizes[i]) as u32
    }

    /// Token ids of the cities.
    pub fn city_tokens(&self) -> Range<u32> {
        self.block(1)
    }

    /// Token ids of the animals.
    pub fn animal_tokens(&self) -> Range<u32> {
        self.block(2)
    }

    /// Token ids of the names.
    pub fn name_tokens(&self) -> Range<u32> {
        self.block(3)
    }

    /// Token ids of the noise tokens.
    pub fn noise_tokens(&self) -> Range<u32> {
        self.block(4)
    }

    /// The end-of-sequence token (the last id), where the answer is read.
    pub fn eos_token(&self) -> u32 {
        self.noise_tokens().end
    }

    /// Writes one sequence about a uniformly drawn name of `names` with relation `signal`.
    fn fill_row(
        &self,
        rng: &mut TaskRng,
        names: Range<usize>,
        signal: u32,
        input: &mut [u32],
        target: &mut [i32],
    ) {
        let t = self.cfg.seq_len;
        let name = rng.gen_range(names);
        let label = match signal {
            Self::REL_LIVES => self.city_tokens().start as usize + self.world.city_of(name),
            _ => self.animal_tokens().start as usize + self.world.animal_of(name),
        };
        let noise = self.noise_tokens();
        for x in input[..t - 3].iter_mut() {
            *x = rng.gen_range(noise.clone());
        }
        // Python: insert(randint(0, T-2), name) into T-3 noise tokens, then
        // insert(randint(name_idx+1, T-1), signal); an index past the end appends.
        let name_idx = rng.gen_range(0..=t - 2);
        let signal_idx = rng.gen_range(name_idx + 1..=t - 1);
        let (name_pos, signal_pos) = (name_idx.min(t - 3), signal_idx.min(t - 2));
        // Noise fills the other slots in order: shift the drawn noise right past the inserts.
        input.copy_within(name_pos..t - 3, name_pos + 1);
        input[name_pos] = self.name_tokens().start + name as u32;
        input.copy_within(signal_pos..t - 2, signal_pos + 1);
        input[signal_pos] = signal;
        input[t - 1] = self.eos_token();
        target[t - 1] = label as i32;
    }
}

impl Task for Ocr {
    fn name(&self) -> &'static str {
        "ocr"
    }

    fn vocab_size(&self) -> usize {
        self.eos_token() as usize + 1
    }

    fn seq_len(&self) -> usize {
        self.cfg.seq_len
    }

    fn generate(&self, rng: &mut TaskRng, batch_size: usize) -> Batch {
        let t = self.cfg.seq_len;
        let (train, test) = (self.train_names(), self.test_names());
        let (lives, animal) = (Self::REL_LIVES, Self::REL_ANIMAL);
        let rows: Vec<(Range<usize>, u32)> = match self.cfg.split {
            OcrSplit::Train => {
                let third = batch_size / 3;
                let mut rows = vec![(train.clone(), lives); third];
                rows.extend(vec![(train, animal); third]);
                rows.extend(vec![(test, lives); batch_size - 2 * third]);
                rows.shuffle(rng);
                rows
            }
            OcrSplit::TrainFacts => vec![(train, lives); batch_size],
            OcrSplit::TrainImplications => vec![(train, animal); batch_size],
            OcrSplit::TestFacts => vec![(test, lives); batch_size],
            OcrSplit::TestImplications => vec![(test, animal); batch_size],
        };
        let mut batch = Batch::empty(batch_size, t);
        let cells = batch.inputs.chunks_mut(t).zip(batch.targets.chunks_mut(t));
        for ((names, signal), (input, target)) in rows.into_iter().zip(cells) {
            self.fill_row(rng, names, signal, input, target);
        }
        batch
    }

    fn token_name(&self, token: u32) -> String {
        let offset = |r: Range<u32>| token - r.start;
        match token {
            Self::REL_LIVES => "rel_lives".into(),
            Self::REL_ANIMAL => "rel_animal".into(),
            t if self.city_tokens().contains(&t) => format!("city{}", offset(self.city_tokens())),
            t if self.animal_tokens().contains(&t) => format!("animal{}", offset(self.animal_tokens())),
            t if self.name_tokens().contains(&t) => format!("name{}", offset(self.name_tokens())),
            t if self.noise_tokens().contains(&t) => format!("noise{}", offset(self.noise_tokens())),
            t if t == self.eos_token() => "eos".into(),
            t => format!("?{t}"),
        }
    }
}
