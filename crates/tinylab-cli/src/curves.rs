//! Learning curves from one or many runs: runs grouped by a config key, seeds averaged into
//! a mean ± std band, one line per (group, metric).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{ensure, Result};
use tinylab_plot::{LinePlot, Series};

use crate::runs::RunData;

/// Metric paths present in the runs that match a pattern (`*` matches any run of characters,
/// e.g. `eval.*.acc`).
pub fn matching_metrics(runs: &[RunData], pattern: &str) -> Vec<String> {
    let mut found: Vec<String> =
        runs.iter().flat_map(|r| r.rows.iter().map(|row| row.path())).filter(|p| glob(pattern, p)).collect();
    found.sort();
    found.dedup();
    found
}

fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            text.starts_with(head)
                && (0..=text.len() - head.len()).any(|i| glob(rest, &text[head.len() + i..]))
        }
    }
}

/// Draws `metrics` (patterns allowed) of `runs`, grouped by `group_by` (a dotted config key;
/// `None` groups by experiment name), to `path` (.png or .svg).
pub fn plot_curves(
    runs: &[RunData],
    metrics: &[String],
    group_by: Option<&str>,
    log_y: bool,
    title: &str,
    path: &Path,
) -> Result<()> {
    let key = group_by.unwrap_or("name");
    let mut groups: BTreeMap<String, Vec<&RunData>> = BTreeMap::new();
    for r in runs {
        groups.entry(r.config.get(key).cloned().unwrap_or_else(|| "?".into())).or_default().push(r);
    }
    let mut series = Vec::new();
    for pattern in metrics {
        for metric in matching_metrics(runs, pattern) {
            for (g, members) in &groups {
                let curves: Vec<Vec<(f64, f64)>> = members
                    .iter()
                    .map(|r| {
                        r.rows
                            .iter()
                            .filter(|row| row.path() == metric)
                            .map(|row| (row.step as f64, row.value))
                            .collect()
                    })
                    .filter(|c: &Vec<(f64, f64)>| !c.is_empty())
                    .collect();
                if curves.is_empty() {
                    continue;
                }
                let (x, mean, lo, hi) = tinylab_plot::mean_band(&curves);
                let label = if groups.len() > 1 {
                    format!("{key}={g} {metric} (n={})", curves.len())
                } else {
                    format!("{metric} (n={})", curves.len())
                };
                let band = (curves.len() > 1).then_some((lo, hi));
                series.push(Series { label, x, y: mean, band });
            }
        }
    }
    ensure!(!series.is_empty(), "no metric matching {metrics:?} in the runs");
    let y_label = if metrics.iter().all(|m| m.ends_with("acc")) { "accuracy" } else { "value" };
    let plot = LinePlot {
        title: title.to_string(),
        x_label: "step".into(),
        y_label: y_label.into(),
        x_log: false,
        y_log: log_y,
        series,
        vlines: stage_boundaries(runs),
    };
    tinylab_plot::line_plot(&plot, path)
}

/// Curriculum stage starts `(step, "stage <name>")` of the runs: the boundaries of the first
/// run that every run shares (seeds that change stage at different steps draw none of those).
pub fn stage_boundaries(runs: &[RunData]) -> Vec<(f64, String)> {
    let of = |r: &RunData| -> Vec<(f64, String)> {
        let names: Vec<String> = r
            .rows
            .iter()
            .filter(|row| row.split.starts_with("curriculum.") && row.metric == "steps")
            .map(|row| row.split["curriculum.".len()..].to_string())
            .collect();
        r.rows
            .iter()
            .filter(|row| row.path() == "curriculum.stage" && row.value > 0.0)
            .map(|row| {
                let i = row.value as usize;
                let name = names.get(i).cloned().unwrap_or_else(|| i.to_string());
                (row.step as f64, format!("stage {name}"))
            })
            .collect()
    };
    let Some(first) = runs.first() else { return vec![] };
    let rest: Vec<Vec<(f64, String)>> = runs[1..].iter().map(of).collect();
    of(first).into_iter().filter(|b| rest.iter().all(|r| r.contains(b))).collect()
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn glob_matches_metric_paths() {
        assert!(glob("eval.*.acc", "eval.len64.acc"));
        assert!(!glob("eval.*.acc", "eval.len64.loss"));
        assert!(glob("train.loss", "train.loss"));
        assert!(glob("*", "anything"));
        assert!(!glob("train.*", "eval.x.acc"));
    }
}
