//! Finding and reading run directories for `collect`, `plot` and `probe`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tinylab_train::metrics::{read_rows, MetricRow};
use toml::{Table, Value};

/// One run directory read back: its id, flattened config and metric rows.
pub struct RunData {
    /// The directory.
    pub dir: PathBuf,
    /// Run id from `run.json` (or the directory name).
    pub run_id: String,
    /// Every scalar of the resolved config by dotted key (`model.d_model` → `64`).
    pub config: BTreeMap<String, String>,
    /// All metric rows.
    pub rows: Vec<MetricRow>,
}

/// Run directories under the given paths: a path holding `config.toml` and `metrics.jsonl` is
/// a run; any other directory is searched recursively. Sorted, deduplicated.
pub fn find_runs(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        anyhow::ensure!(p.exists(), "{}: no such file or directory", p.display());
        walk(p, &mut out);
    }
    out.sort();
    out.dedup();
    anyhow::ensure!(
        !out.is_empty(),
        "no run directories (with config.toml and metrics.jsonl) under {paths:?}"
    );
    Ok(out)
}

fn walk(p: &Path, out: &mut Vec<PathBuf>) {
    if p.join("config.toml").is_file() && p.join("metrics.jsonl").is_file() {
        out.push(p.to_path_buf());
        return;
    }
    if let Ok(entries) = std::fs::read_dir(p) {
        let mut subs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
        subs.sort();
        for s in subs {
            walk(&s, out);
        }
    }
}

/// Flattens a TOML table into dotted scalar keys; arrays are written as their TOML text.
pub fn flatten(prefix: &str, t: &Table, out: &mut BTreeMap<String, String>) {
    for (k, v) in t {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            Value::Table(inner) => flatten(&key, inner, out),
            Value::String(s) => {
                out.insert(key, s.clone());
            }
            Value::Array(a) if a.iter().all(|x| x.is_table()) => {
                for (i, x) in a.iter().enumerate() {
                    if let Value::Table(inner) = x {
                        flatten(&format!("{key}.{i}"), inner, out);
                    }
                }
            }
            other => {
                out.insert(key, other.to_string());
            }
        }
    }
}

/// Reads one run directory.
pub fn read_run(dir: &Path) -> Result<RunData> {
    let text =
        std::fs::read_to_string(dir.join("config.toml")).with_context(|| format!("{}", dir.display()))?;
    let table: Table = text.parse().with_context(|| format!("{}/config.toml", dir.display()))?;
    let mut config = BTreeMap::new();
    flatten("", &table, &mut config);
    let run_id = std::fs::read(dir.join("run.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["run_id"].as_str().map(String::from))
        .unwrap_or_else(|| dir.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default());
    let rows =
        read_rows(&dir.join("metrics.jsonl")).with_context(|| format!("{}/metrics.jsonl", dir.display()))?;
    Ok(RunData { dir: dir.to_path_buf(), run_id, config, rows })
}

/// Config keys whose values differ between runs (the ones worth a column or a group).
pub fn varying_keys(runs: &[RunData]) -> Vec<String> {
    let mut all: BTreeMap<&str, Vec<Option<&String>>> = BTreeMap::new();
    for r in runs {
        for k in r.config.keys() {
            all.entry(k).or_default();
        }
    }
    all.into_iter()
        .filter(|(k, _)| {
            let first = runs[0].config.get(*k);
            runs.iter().any(|r| r.config.get(*k) != first)
        })
        .map(|(k, _)| k.to_string())
        .collect()
}
