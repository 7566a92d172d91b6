//! `tinylab collect RUNS... -o FILE.csv`: every run's metrics as one long, tidy table with the
//! run id and config columns, for pandas / polars.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;

use crate::runs::{find_runs, read_run, varying_keys, RunData};

/// Arguments of `tinylab collect`.
#[derive(Args)]
pub struct CollectArgs {
    /// Run directories, or directories to search for runs (e.g. `runs/`).
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Output CSV (e.g. notebooks-data/cat.csv).
    #[arg(short, long)]
    pub out: PathBuf,
    /// Config keys to add as columns (default: `name`, `seed` and every `task.`, `model.` or
    /// `train.` key that differs between the collected runs).
    #[arg(long = "column", value_name = "KEY")]
    pub columns: Vec<String>,
}

/// The column header: fixed columns, then config columns.
pub fn header(config_columns: &[String]) -> Vec<String> {
    let mut h = vec!["run_id".to_string(), "run_dir".to_string()];
    h.extend(config_columns.iter().cloned());
    h.extend(["step", "split", "metric", "value"].map(String::from));
    h
}

/// The config columns for these runs: `name`, `seed`, then the keys that vary (or `asked`).
pub fn config_columns(runs: &[RunData], asked: &[String]) -> Vec<String> {
    if !asked.is_empty() {
        return asked.to_vec();
    }
    let mut cols = vec!["name".to_string(), "seed".to_string()];
    let knob = |k: &str| ["task.", "model.", "train."].iter().any(|p| k.starts_with(p));
    for k in varying_keys(runs) {
        if knob(&k) && !cols.contains(&k) {
            cols.push(k);
        }
    }
    cols
}

/// Runs the command; returns the process exit code.
pub fn main(a: CollectArgs) -> Result<u8> {
    let dirs = find_runs(&a.runs)?;
    let runs: Vec<RunData> = dirs.iter().map(|d| read_run(d)).collect::<Result<_>>()?;
    let cols = config_columns(&runs, &a.columns);
    if let Some(parent) = a.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = a.out.with_extension("csv.tmp");
    let mut w = csv::Writer::from_path(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    w.write_record(header(&cols))?;
    let mut n = 0usize;
    for r in &runs {
        let fixed: Vec<String> = std::iter::once(r.run_id.clone())
            .chain(std::iter::once(r.dir.display().to_string()))
            .chain(cols.iter().map(|c| r.config.get(c).cloned().unwrap_or_default()))
            .collect();
        for row in &r.rows {
            let mut rec = fixed.clone();
            rec.extend([
                row.step.to_string(),
                row.split.clone(),
                row.metric.clone(),
                format_value(row.value),
            ]);
            w.write_record(&rec)?;
            n += 1;
        }
    }
    w.flush()?;
    drop(w);
    std::fs::rename(&tmp, &a.out)?;
    eprintln!(
        "{} rows from {} runs → {} (columns: {})",
        n,
        runs.len(),
        a.out.display(),
        header(&cols).join(", ")
    );
    Ok(0)
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else {
        serde_json::to_string(&v).unwrap_or_else(|_| v.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_run(root: &std::path::Path, name: &str, seed: u64, d_model: usize) -> PathBuf {
        let dir = root.join(format!("{name}-{seed}"));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = format!(
            "name = \"{name}\"\nseed = {seed}\n[task]\nkind = \"mqar\"\n[model]\nd_model = {d_model}\n"
        );
        std::fs::write(dir.join("config.toml"), cfg).unwrap();
        let rows = "{\"step\":0,\"split\":\"eval.len64\",\"metric\":\"acc\",\"value\":0.125}\n\
                    {\"step\":10,\"split\":\"train\",\"metric\":\"loss\",\"value\":1.5}\n";
        std::fs::write(dir.join("metrics.jsonl"), rows).unwrap();
        dir
    }

    #[test]
    fn collect_writes_a_long_table_with_the_documented_columns() {
        let root = std::env::temp_dir().join(format!("tinylab-collect-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        fake_run(&root, "a", 0, 32);
        fake_run(&root, "a", 1, 64);
        let out = root.join("out/table.csv");
        main(CollectArgs { runs: vec![root.clone()], out: out.clone(), columns: vec![] }).unwrap();
        let mut r = csv::Reader::from_path(&out).unwrap();
        let header: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
        assert_eq!(
            header,
            ["run_id", "run_dir", "name", "seed", "model.d_model", "step", "split", "metric", "value"]
        );
        let records: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
        assert_eq!(records.len(), 4);
        assert_eq!(&records[0][2], "a");
        assert_eq!(&records[0][4], "32");
        assert_eq!(&records[0][6], "eval.len64");
        assert_eq!(records[0][8].parse::<f64>().unwrap(), 0.125);
        assert_eq!(&records[3][4], "64");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
