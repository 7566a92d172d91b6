//! Metric rows in long format, appended to `metrics.jsonl` and `metrics.csv` as they happen.
//!
//! Row: `{"step": 100, "split": "eval.len64", "metric": "acc", "value": 0.93}`; the CSV has the
//! header `step,split,metric,value`. Files are flushed after every batch of rows, so a crash
//! loses at most the rows of the step in progress.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::rundir::write_atomic;

/// One metric value at one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRow {
    /// Optimizer steps taken when the value was measured.
    pub step: usize,
    /// `train` or `eval.<name>`.
    pub split: String,
    /// `loss`, `acc`, `lr`, `grad_norm`, …
    pub metric: String,
    /// The value.
    pub value: f64,
}

impl MetricRow {
    /// The metric path `<split>.<metric>` used by checks.
    pub fn path(&self) -> String {
        format!("{}.{}", self.split, self.metric)
    }

    fn csv_line(&self) -> String {
        format!("{},{},{},{}\n", self.step, self.split, self.metric, fmt_value(self.value))
    }
}

/// Shortest round-trip representation (`NaN`/`inf` spelled so pandas reads them).
fn fmt_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        }
    } else {
        serde_json::to_string(&v).unwrap_or_else(|_| v.to_string())
    }
}

const CSV_HEADER: &str = "step,split,metric,value\n";

/// Appends metric rows to the two files of a run directory.
pub struct MetricsWriter {
    jsonl: File,
    csv: File,
}

impl MetricsWriter {
    /// Opens (creating if needed) `metrics.jsonl` and `metrics.csv` in `dir` for appending.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        let csv_path = dir.join("metrics.csv");
        let new_csv = !csv_path.exists();
        let jsonl = OpenOptions::new().create(true).append(true).open(dir.join("metrics.jsonl"))?;
        let mut csv = OpenOptions::new().create(true).append(true).open(csv_path)?;
        if new_csv {
            csv.write_all(CSV_HEADER.as_bytes())?;
        }
        Ok(Self { jsonl, csv })
    }

    /// Appends rows to both files and flushes.
    pub fn write(&mut self, rows: &[MetricRow]) -> std::io::Result<()> {
        let mut j = String::new();
        let mut c = String::new();
        for r in rows {
            j.push_str(&serde_json::to_string(r).map_err(std::io::Error::other)?);
            j.push('\n');
            c.push_str(&r.csv_line());
        }
        self.jsonl.write_all(j.as_bytes())?;
        self.csv.write_all(c.as_bytes())?;
        self.jsonl.flush()?;
        self.csv.flush()
    }
}

/// Reads every row of a `metrics.jsonl` (skipping a torn last line).
pub fn read_rows(path: &Path) -> std::io::Result<Vec<MetricRow>> {
    let f = File::open(path)?;
    let mut rows = Vec::new();
    for line in BufReader::new(f).lines() {
        let line = line?;
        if let Ok(r) = serde_json::from_str::<MetricRow>(&line) {
            rows.push(r);
        }
    }
    Ok(rows)
}

/// Keeps only rows with `step ≤ last_step` in both files (used when resuming from a
/// checkpoint, so the resumed curve continues exactly where the checkpoint left off). Kept
/// lines are copied byte for byte; returns the kept rows.
pub fn truncate_after(dir: &Path, last_step: usize) -> std::io::Result<Vec<MetricRow>> {
    let jsonl: PathBuf = dir.join("metrics.jsonl");
    let text = std::fs::read_to_string(&jsonl).unwrap_or_default();
    let mut kept = String::new();
    let mut rows = Vec::new();
    for line in text.lines() {
        if let Ok(r) = serde_json::from_str::<MetricRow>(line) {
            if r.step <= last_step {
                kept.push_str(line);
                kept.push('\n');
                rows.push(r);
            }
        }
    }
    let csv_path = dir.join("metrics.csv");
    let csv = std::fs::read_to_string(&csv_path).unwrap_or_default();
    let mut csv_kept = String::from(CSV_HEADER);
    for line in csv.lines().skip(1) {
        let step = line.split(',').next().and_then(|s| s.parse::<usize>().ok());
        if step.is_some_and(|s| s <= last_step) && line.split(',').count() == 4 {
            csv_kept.push_str(line);
            csv_kept.push('\n');
        }
    }
    write_atomic(&jsonl, kept.as_bytes())?;
    write_atomic(&csv_path, csv_kept.as_bytes())?;
    Ok(rows)
}
