//! Config loading (with `--set` overrides) and the run directory of a selector experiment,
//! following tinylab's contract: `config.toml` (resolved) and `run.json` written first,
//! `metrics.jsonl`/`metrics.csv` as rows are produced, `plots/`, then `summary.json`.
//!
//! Differences from `tinylab_train::run`: these runs take seconds, so there are no
//! checkpoints; re-running the same config into the same directory recomputes it (and
//! produces the same metrics, byte for byte).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tinylab_train::checks::CheckSpec;
use tinylab_train::metrics::{MetricRow, MetricsWriter};
use tinylab_train::rundir::{git_sha, host_name, now_unix, run_id, write_atomic, RunReport};
use tinylab_train::Summary;
use toml::{Table, Value};

/// Reads a TOML file, applies `key.path=value` overrides and the seed, and types it.
/// Returns the typed config and the file stem (the default name).
pub fn load_typed<T: DeserializeOwned>(
    path: &Path,
    sets: &[String],
    seed: Option<u64>,
) -> Result<(T, String)> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).with_context(|| format!("{file}: cannot read"))?;
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    Ok((parse_typed(&text, &file, sets, seed)?, stem))
}

/// Like [`load_typed`] on text already read (`file` names it in messages).
pub fn parse_typed<T: DeserializeOwned>(
    text: &str,
    file: &str,
    sets: &[String],
    seed: Option<u64>,
) -> Result<T> {
    let mut table: Table = text.parse().map_err(|e: toml::de::Error| anyhow::anyhow!("{file}: {e}"))?;
    for s in sets {
        tinylab_train::overrides::apply(&mut table, s).map_err(|m| anyhow::anyhow!("{file}: --set {m}"))?;
    }
    if let Some(seed) = seed {
        table.insert("seed".into(), Value::Integer(seed as i64));
    }
    T::deserialize(Value::Table(table)).map_err(|e| anyhow::anyhow!("{file}: {e}"))
}

/// Validates the metric paths and bounds of `[[check]]` entries (splits `train` and
/// `probe.*`, any metric name: the experiment defines them).
pub fn validate_checks(checks: &[CheckSpec], known: &[String]) -> Result<()> {
    for c in checks {
        if c.at_least.is_none() && c.at_most.is_none() {
            bail!("check `{}` needs at_least and/or at_most", c.name);
        }
        if !known.contains(&c.metric) {
            bail!(
                "check `{}`: unknown metric `{}`; this experiment records: {}",
                c.name,
                c.metric,
                known.join(", ")
            );
        }
    }
    Ok(())
}

/// An open run directory.
pub struct Run {
    /// The directory.
    pub dir: PathBuf,
    writer: MetricsWriter,
    report: RunReport,
    started: Instant,
    /// Last value of every metric path written so far.
    pub finals: BTreeMap<String, f64>,
}

impl Run {
    /// Creates (or reuses) the run directory: `out`, or `runs/<name>/<run-id>` where the run
    /// id hashes `id_toml` (the resolved config without description and checks). Writes
    /// `config.toml` (`resolved_toml`) and `run.json`, and starts fresh metric files.
    pub fn create(
        out: Option<&Path>,
        name: &str,
        seed: u64,
        resolved_toml: &str,
        id_toml: &str,
    ) -> Result<Self> {
        let id = run_id(id_toml);
        let dir = out.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("runs").join(name).join(&id));
        std::fs::create_dir_all(dir.join("plots")).with_context(|| format!("{}", dir.display()))?;
        for f in ["metrics.jsonl", "metrics.csv", "summary.json"] {
            let p = dir.join(f);
            if p.exists() {
                std::fs::remove_file(&p)?;
            }
        }
        write_atomic(&dir.join("config.toml"), resolved_toml.as_bytes())?;
        let report = RunReport {
            run_id: id,
            name: name.to_string(),
            seed,
            tinylab_version: env!("CARGO_PKG_VERSION").to_string(),
            git_sha: git_sha(),
            host: host_name(),
            threads: 1,
            start_unix: now_unix(),
            end_unix: None,
            wall_time_s: None,
            resumed_from_step: None,
            steps_done: 0,
        };
        write_atomic(&dir.join("run.json"), &serde_json::to_vec_pretty(&report)?)?;
        let writer = MetricsWriter::open(&dir)?;
        Ok(Self { dir, writer, report, started: Instant::now(), finals: BTreeMap::new() })
    }

    /// Appends metric rows (and remembers the last value of each path).
    pub fn write(&mut self, rows: &[MetricRow]) -> Result<()> {
        for r in rows {
            self.finals.insert(r.path(), r.value);
        }
        self.writer.write(rows)?;
        Ok(())
    }

    /// A plot path under `plots/`.
    pub fn plot(&self, file: &str) -> PathBuf {
        self.dir.join("plots").join(file)
    }

    /// Evaluates the checks on the final metrics, writes `summary.json` and completes
    /// `run.json`.
    pub fn finish(mut self, checks: &[CheckSpec], steps: usize) -> Result<Summary> {
        let wall = self.started.elapsed().as_secs_f64();
        let results: Vec<_> = checks.iter().map(|c| c.evaluate(&self.finals)).collect();
        let summary = Summary {
            run_id: self.report.run_id.clone(),
            name: self.report.name.clone(),
            seed: self.report.seed,
            steps,
            stopped_early: false,
            wall_time_s: wall,
            final_metrics: self.finals.clone(),
            all_passed: results.iter().all(|c| c.pass),
            checks: results,
        };
        write_atomic(&self.dir.join("summary.json"), &serde_json::to_vec_pretty(&summary)?)?;
        self.report.end_unix = Some(now_unix());
        self.report.wall_time_s = Some(wall);
        self.report.steps_done = steps;
        write_atomic(&self.dir.join("run.json"), &serde_json::to_vec_pretty(&self.report)?)?;
        Ok(summary)
    }
}

/// A metric row.
pub fn row(step: usize, split: &str, metric: &str, value: f64) -> MetricRow {
    MetricRow { step, split: split.to_string(), metric: metric.to_string(), value }
}

/// `toml::to_string` of a config, plus the same with `description` and `check` removed (the
/// part that determines the results, hashed into the run id).
pub fn resolved<T: Serialize>(cfg: &T) -> Result<(String, String)> {
    let full = toml::to_string(cfg)?;
    let mut t: Table = full.parse()?;
    t.remove("description");
    t.remove("check");
    Ok((full, toml::to_string(&t)?))
}
