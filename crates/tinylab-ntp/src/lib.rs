//! Attention as a token selector (tinylab issue 5).
//!
//! * [`tpg`]: token-priority-graph data (official NTP generator) and the SCCs of every G^(k).
//! * [`selector`]: the one-layer selector f(X) = attention mass of the last token, combined or
//!   factorised W, analytic gradients, (normalised) GD.
//! * [`theory`]: W_svm (graph-SVM QP, Clarabel), the nuclear-norm W_svm,* of the factorised
//!   model (interior-point SDP with a duality certificate) and W_fin (Newton on S_fin).
//! * [`linalg`], [`spectral`]: small dense linear algebra (Jacobi eigen/SVD, nuclear norm).
//! * [`ntp`]: the `kind = "ntp"` experiment; [`ccmc`]: the `kind = "ccmc"` experiment.
//!
//! Entry points for the CLI: [`is_selector_experiment`] and [`run`].

pub mod ccmc;
pub mod linalg;
pub mod ntp;
pub mod rundir;
pub mod selector;
pub mod spectral;
pub mod theory;
pub mod tpg;

use std::path::Path;

use anyhow::{bail, Result};
use tinylab_train::Summary;

/// Whether a TOML experiment is one of this crate's (top-level `kind = "ntp"` or `"ccmc"`).
pub fn is_selector_experiment(toml_text: &str) -> bool {
    toml_text
        .parse::<toml::Table>()
        .ok()
        .and_then(|t| t.get("kind").and_then(|k| k.as_str().map(|s| s == "ntp" || s == "ccmc")))
        .unwrap_or(false)
}

/// Runs an NTP or CCMC experiment file with `key.path=value` overrides and an optional seed,
/// into `out` or `runs/<name>/<run-id>`; returns its summary (also in `summary.json`). Prints
/// one line (the run directory) to stderr; the caller prints the check table
/// (`tinylab_train::checks::format_table`).
pub fn run(config_path: &Path, sets: &[String], seed: Option<u64>, out: Option<&Path>) -> Result<Summary> {
    let text = std::fs::read_to_string(config_path)?;
    let stem = config_path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let kind = text
        .parse::<toml::Table>()
        .ok()
        .and_then(|t| t.get("kind").and_then(|k| k.as_str().map(String::from)))
        .unwrap_or_default();
    let file = config_path.display().to_string();
    match kind.as_str() {
        "ntp" => ntp::run(rundir::parse_typed(&text, &file, sets, seed)?, &stem, out),
        "ccmc" => ccmc::run(rundir::parse_typed(&text, &file, sets, seed)?, &stem, out),
        other => bail!("{file}: kind = {other:?}: expected \"ntp\" or \"ccmc\""),
    }
}
