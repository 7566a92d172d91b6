//! The `kind = "ntp"` experiment file: `[data]` (see [`crate::tpg::DataConfig`]), `[model]`,
//! `[train]`, `[[check]]`, and the names of the final metrics it records.

use serde::{Deserialize, Serialize};
use tinylab_train::checks::CheckSpec;

use crate::selector::Weights;
use crate::tpg::DataConfig;

/// `[model]` of an NTP experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// `combined` (W, the notebooks) or `factorized` (W = W_Kᵀ W_Q).
    #[serde(default)]
    pub weights: Weights,
    /// Start from zero instead of PyTorch's default U(−1/√d, 1/√d).
    #[serde(default)]
    pub zero_init: bool,
}

/// `[train]` of an NTP experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Gradient steps (`ITN`).
    pub iterations: usize,
    /// Step size (`lr`).
    pub lr: f64,
    /// Normalised gradient g/‖g‖ (`norm_grad`).
    #[serde(default = "yes")]
    pub normalized: bool,
    /// Independent trials, each with its own data set and init (`epochs` in the notebooks).
    pub trials: usize,
    /// Metric rows every this many steps.
    #[serde(default = "twenty")]
    pub log_every: usize,
}

fn yes() -> bool {
    true
}
fn twenty() -> usize {
    20
}

/// An NTP experiment file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NtpExperiment {
    /// Always `"ntp"`.
    pub kind: String,
    /// Run name (default: the file stem).
    #[serde(default)]
    pub name: String,
    /// What the experiment shows.
    #[serde(default)]
    pub description: String,
    /// Seed of every random draw.
    pub seed: u64,
    /// The data generator.
    pub data: DataConfig,
    /// The model.
    #[serde(default)]
    pub model: ModelConfig,
    /// Training.
    pub train: TrainConfig,
    /// Claim checks.
    #[serde(default)]
    pub check: Vec<CheckSpec>,
}

/// Final metrics this experiment records (`probe.ntp.<name>`).
pub const FINAL_METRICS: &[&str] = &[
    "cos_svm_mean",
    "cos_svm_min",
    "cos_svm_fin_mean",
    "cos_svm_init_mean",
    "cos_svm_noeq_mean",
    "cos_svm_nuc_mean",
    "cos_svm_nuc_min",
    "cos_svm_nuc_init_mean",
    "nuc_margin_ratio_mean",
    "fro_margin_ratio_mean",
    "cos_svm_vs_nuc_mean",
    "cos_nuc_minus_svm_mean",
    "svm_nuc_gap_max",
    "svm_nuc_ratio_mean",
    "allstrict_infeasible_frac",
    "fin_dist_mean",
    "fin_dist_rel_mean",
    "fin_dist_ratio_mean",
    "lower_scc_attn_mean",
    "lower_scc_attn_max",
    "top_scc_min_share",
    "top_scc_tv_wfin_max",
    "w_norm_mean",
    "w_fin_norm_mean",
    "w_svm_norm_mean",
    "cyclic_trials",
];
