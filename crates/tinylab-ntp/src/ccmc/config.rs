//! The `kind = "ccmc"` experiment file: the `[estimation]`, `[coverage]`, `[generation]` and
//! `[single]` tables, and the metric paths each records.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tinylab_train::checks::CheckSpec;

/// `[estimation]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EstimationConfig {
    /// Tokens.
    #[serde(rename = "K")]
    pub k: usize,
    /// Prompt length.
    #[serde(rename = "T")]
    pub t: usize,
    /// Teacher scale: A* entries ~ N(0, σ²).
    pub sigma: f64,
    /// Sample sizes n.
    pub sizes: Vec<usize>,
    /// Independent data sets per size (errors are averaged).
    pub reps: usize,
}

/// `[coverage]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoverageConfig {
    /// Tokens, prompt length, scale, sizes and repetitions as in `[estimation]`.
    #[serde(rename = "K")]
    pub k: usize,
    /// Prompt length.
    #[serde(rename = "T")]
    pub t: usize,
    /// Teacher scale.
    pub sigma: f64,
    /// Sample sizes.
    pub sizes: Vec<usize>,
    /// Data sets per size.
    pub reps: usize,
    /// The last token whose prompts never contain `missing`.
    pub last: usize,
    /// The token never seen in prompts that end with `last`.
    pub missing: usize,
    /// The student's initial value of the uncovered entry in a second fit (shows that the
    /// data cannot move it).
    #[serde(default = "five")]
    pub alt_init: f64,
}

fn five() -> f64 {
    5.0
}

/// `[generation]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenerationConfig {
    /// Tokens.
    #[serde(rename = "K")]
    pub k: usize,
    /// Window (= prompt) length.
    #[serde(rename = "T")]
    pub t: usize,
    /// Teacher scales σ: A* = σ·G for one fixed standard Gaussian G.
    pub scales: Vec<f64>,
    /// Generated tokens per trajectory.
    pub steps: usize,
    /// Trajectories (one prompt each) per scale.
    pub trajectories: usize,
    /// Metric rows every this many steps.
    #[serde(default = "fifty")]
    pub log_every: usize,
}

fn fifty() -> usize {
    50
}

/// `[single]`: learning from one trajectory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SingleConfig {
    /// Tokens.
    #[serde(rename = "K")]
    pub k: usize,
    /// Window (= prompt) length.
    #[serde(rename = "T")]
    pub t: usize,
    /// Teacher scale: A* entries ~ N(0, σ²).
    pub sigma: f64,
    /// Trajectory lengths L (examples = generated tokens); the student of length L is fitted
    /// on the first L (window → next token) pairs of the trajectory.
    pub lengths: Vec<usize>,
    /// Independent trajectories (one random prompt each); errors are averaged.
    pub trajectories: usize,
    /// Reference length of the plateau ratios `err(L_max) / err(plateau_from)` (one of
    /// `lengths`).
    pub plateau_from: usize,
}

/// A CCMC experiment file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CcmcExperiment {
    /// Always `"ccmc"`.
    pub kind: String,
    /// Run name (default: the file stem).
    #[serde(default)]
    pub name: String,
    /// What the experiment shows.
    #[serde(default)]
    pub description: String,
    /// Seed.
    pub seed: u64,
    /// Consistency of the cross-entropy fit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimation: Option<EstimationConfig>,
    /// Coverage failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage: Option<CoverageConfig>,
    /// Winner-takes-all generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<GenerationConfig>,
    /// Learning from a single trajectory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single: Option<SingleConfig>,
    /// Claim checks.
    #[serde(default)]
    pub check: Vec<CheckSpec>,
}
pub(crate) fn rng_for(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut r = ChaCha8Rng::seed_from_u64(seed);
    r.set_stream(stream);
    r
}

/// Scale label for metric names: `1` → `s1`, `0.5` → `s0p5`.
pub fn scale_tag(s: f64) -> String {
    format!("s{}", format!("{s}").replace('.', "p").replace('-', "m"))
}

/// The metric paths an experiment records (for validating its checks).
pub fn known_metrics(exp: &CcmcExperiment) -> Vec<String> {
    let mut m = Vec::new();
    if let Some(e) = &exp.estimation {
        m.push("probe.ccmc.slope".to_string());
        m.push("probe.ccmc.unconverged_rows".to_string());
        for n in &e.sizes {
            m.push(format!("probe.ccmc.rel_err_n{n}"));
        }
    }
    if exp.coverage.is_some() {
        for x in [
            "slope_covered",
            "uncovered_err_first",
            "uncovered_err_last",
            "uncovered_err_ratio",
            "uncovered_init_shift",
            "covered_entry_err_ratio",
        ] {
            m.push(format!("probe.coverage.{x}"));
        }
    }
    if let Some(g) = &exp.generation {
        for s in &g.scales {
            let tag = scale_tag(*s);
            for x in [
                "distinct_initial",
                "distinct_final",
                "entropy_initial",
                "entropy_final",
                "entropy_ratio",
                "control_distinct_final",
                "control_entropy_final",
            ] {
                m.push(format!("probe.generation.{x}_{tag}"));
            }
        }
    }
    if let Some(c) = &exp.single {
        for x in SINGLE_METRICS {
            m.push(format!("probe.single.{x}"));
        }
        for l in &c.lengths {
            for x in ["rel_err", "covered_err", "coverage", "iid_rel_err", "iid_coverage"] {
                m.push(format!("probe.single.{x}_L{l}"));
            }
        }
    }
    m
}

/// The length-free `probe.single.*` metrics.
pub const SINGLE_METRICS: &[&str] = &[
    "distinct_initial",
    "distinct_final",
    "informative_frac",
    "prompt_coverage_bound",
    "err_ratio",
    "covered_err_ratio",
    "iid_err_ratio",
    "coverage_growth",
    "coverage_vs_iid",
    "unconverged_rows",
];
