//! Claims as checks: `[[check]]` entries comparing a final metric against a threshold taken
//! from the paper or from theory.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Metrics every split records: training rows and evaluation rows.
pub const TRAIN_METRICS: &[&str] = &["loss", "acc", "lr", "grad_norm"];
/// Metrics of an `eval.<name>` split. Continuous tasks record `loss` (mean squared error),
/// `gd_loss` (that of the task's reference predictor, optimal one-step GD for
/// `linear_regression`, on the same sequences) and `loss_over_gd` (their ratio), not `acc`.
pub const EVAL_METRICS: &[&str] = &["loss", "acc", "gd_loss", "loss_over_gd"];

/// One `[[check]]`: `metric` must be `≥ at_least` and/or `≤ at_most`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckSpec {
    /// What the claim says, in words.
    pub name: String,
    /// Metric path `<split>.<metric>`, e.g. `eval.len256.acc` or `train.loss`.
    pub metric: String,
    /// Lower bound (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_least: Option<f64>,
    /// Upper bound (inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_most: Option<f64>,
}

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The claim in words.
    pub name: String,
    /// Metric path.
    pub metric: String,
    /// Final value of the metric (`None` if never recorded).
    pub measured: Option<f64>,
    /// Lower bound, if any.
    pub at_least: Option<f64>,
    /// Upper bound, if any.
    pub at_most: Option<f64>,
    /// Whether the measured value satisfies every bound.
    pub pass: bool,
}

impl CheckSpec {
    /// Checks the metric path against the known splits and that a bound is given.
    pub fn validate(&self, splits: &[String]) -> Result<(), String> {
        if self.at_least.is_none() && self.at_most.is_none() {
            return Err(format!("`{}` needs at_least and/or at_most", self.name));
        }
        let (split, metric) = self
            .metric
            .rsplit_once('.')
            .ok_or_else(|| format!("metric `{}` must be <split>.<metric>", self.metric))?;
        if !splits.iter().any(|s| s == split) {
            return Err(format!(
                "metric `{}`: unknown split `{split}`; allowed: {}",
                self.metric,
                splits.join(", ")
            ));
        }
        if split.starts_with("probe.") {
            return Ok(()); // probe metrics are validated by the probe stage
        }
        let allowed = if split == "train" { TRAIN_METRICS } else { EVAL_METRICS };
        if !allowed.contains(&metric) {
            return Err(format!(
                "metric `{}`: unknown metric `{metric}`; allowed: {}",
                self.metric,
                allowed.join(", ")
            ));
        }
        Ok(())
    }

    /// Compares against the final metrics (`"<split>.<metric>" → value`).
    pub fn evaluate(&self, finals: &BTreeMap<String, f64>) -> CheckResult {
        let measured = finals.get(&self.metric).copied();
        let pass = match measured {
            Some(v) if v.is_finite() => {
                self.at_least.is_none_or(|lo| v >= lo) && self.at_most.is_none_or(|hi| v <= hi)
            }
            _ => false,
        };
        CheckResult {
            name: self.name.clone(),
            metric: self.metric.clone(),
            measured,
            at_least: self.at_least,
            at_most: self.at_most,
            pass,
        }
    }
}

/// A fixed-width pass/fail table of check results for the terminal.
pub fn format_table(results: &[CheckResult]) -> String {
    let mut out = String::new();
    let w = results.iter().map(|r| r.name.chars().count()).max().unwrap_or(5).max(5);
    out.push_str(&format!(
        "{:<6} {:<w$}  {:>9}  {:<12} {}\n",
        "result", "check", "measured", "threshold", "metric"
    ));
    for r in results {
        let thr = match (r.at_least, r.at_most) {
            (Some(lo), Some(hi)) => format!("[{lo}, {hi}]"),
            (Some(lo), None) => format!(">= {lo}"),
            (None, Some(hi)) => format!("<= {hi}"),
            (None, None) => String::new(),
        };
        let m = r.measured.map(|v| format!("{v:.4}")).unwrap_or_else(|| "missing".into());
        let status = if r.pass { "PASS" } else { "FAIL" };
        out.push_str(&format!("{status:<6} {:<w$}  {m:>9}  {thr:<12} {}\n", r.name, r.metric));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(metric: &str, lo: Option<f64>, hi: Option<f64>) -> CheckSpec {
        CheckSpec { name: "c".into(), metric: metric.into(), at_least: lo, at_most: hi }
    }

    #[test]
    fn bounds_and_validation() {
        let splits = vec!["train".to_string(), "eval.len64".to_string()];
        assert!(spec("eval.len64.acc", Some(0.9), None).validate(&splits).is_ok());
        assert!(spec("eval.len65.acc", Some(0.9), None).validate(&splits).is_err());
        assert!(spec("eval.len64.accuracy", Some(0.9), None).validate(&splits).is_err());
        assert!(spec("eval.len64.acc", None, None).validate(&splits).is_err());
        let finals: BTreeMap<String, f64> = [("eval.len64.acc".to_string(), 0.95)].into();
        assert!(spec("eval.len64.acc", Some(0.9), None).evaluate(&finals).pass);
        assert!(!spec("eval.len64.acc", Some(0.99), None).evaluate(&finals).pass);
        assert!(spec("eval.len64.acc", None, Some(0.95)).evaluate(&finals).pass);
        assert!(!spec("eval.len64.acc", None, Some(0.2)).evaluate(&finals).pass);
        assert!(!spec("train.acc", Some(0.0), None).evaluate(&finals).pass, "missing metric fails");
    }
}
