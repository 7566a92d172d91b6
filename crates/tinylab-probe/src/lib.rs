//! Weight analysis of tinylab models, in the spirit of TransformerLens: SVD tools over faer,
//! factored QK/OV circuits, composition scores, and linear probes on activations.
//!
//! All analysis runs in `f64` on `ndarray` arrays ([`convert`] moves weights off candle tensors).
//! Matrices use the model's row-vector convention (see [`circuits`]).

pub mod ablate;
pub mod attention;
pub mod circuits;
pub mod composition;
pub mod convert;
pub mod error;
pub mod linalg;
pub mod linear_probe;
pub mod logit_lens;
pub mod samples;

pub use circuits::{
    conv_filters, conv_lag_summary, full_ov_circuit, full_qk_circuit, ov_circuit, qk_circuit, FactoredMatrix,
    LagSummary,
};
pub use composition::{all_composition_scores, head_composition_score, ComponentScore, CompositionKind};
pub use error::{ProbeError, Result};
pub use linalg::Svd;
pub use linear_probe::{logistic_probe, ridge_probe, train_test_split, LogisticConfig, Split};
