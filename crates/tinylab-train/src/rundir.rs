//! The run directory contract (see DESIGN.md): paths, atomic writes, run ids, `run.json`.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Writes `bytes` to a temporary file beside `path`, syncs it, then renames it over `path`, so
/// readers see either the old or the new file, never a torn one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// 64-bit FNV-1a hash (stable across platforms and Rust versions, unlike `DefaultHasher`).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// Run id: the first 10 hex digits of the hash of the resolved config (which holds the seed).
pub fn run_id(resolved_toml: &str) -> String {
    format!("{:016x}", fnv1a(resolved_toml.as_bytes()))[..10].to_string()
}

/// Paths inside one run directory.
#[derive(Debug, Clone)]
pub struct RunDir {
    /// The directory itself.
    pub root: PathBuf,
}

impl RunDir {
    /// Wraps a directory path (nothing is created).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    /// `config.toml`: the resolved configuration.
    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }
    /// `run.json`: reproducibility report.
    pub fn run_json(&self) -> PathBuf {
        self.root.join("run.json")
    }
    /// `summary.json`: final metrics and checks.
    pub fn summary(&self) -> PathBuf {
        self.root.join("summary.json")
    }
    /// `metrics.jsonl`.
    pub fn metrics_jsonl(&self) -> PathBuf {
        self.root.join("metrics.jsonl")
    }
    /// `checkpoints/`.
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join("checkpoints")
    }
    /// `checkpoints/step-000500.safetensors`.
    pub fn checkpoint(&self, step: usize) -> PathBuf {
        self.checkpoints().join(format!("step-{step:06}.safetensors"))
    }

    /// Weights at the end of curriculum stage `i` (kept, never pruned; no optimizer state).
    pub fn stage_checkpoint(&self, i: usize) -> PathBuf {
        self.checkpoints().join(format!("stage-{i:02}.safetensors"))
    }

    /// The saved end-of-stage weights, sorted by stage, as `(stage, path)`.
    pub fn list_stage_checkpoints(&self) -> Vec<(usize, PathBuf)> {
        self.list_numbered("stage-")
    }

    /// Checkpoint files sorted by step, as `(step, path)`.
    pub fn list_checkpoints(&self) -> Vec<(usize, PathBuf)> {
        self.list_numbered("step-")
    }

    /// Files `checkpoints/<prefix><number>.safetensors`, sorted by number.
    fn list_numbered(&self, prefix: &str) -> Vec<(usize, PathBuf)> {
        let mut out: Vec<(usize, PathBuf)> = std::fs::read_dir(self.checkpoints())
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let n = name.strip_prefix(prefix)?.strip_suffix(".safetensors")?.parse().ok()?;
                Some((n, e.path()))
            })
            .collect();
        out.sort();
        out
    }

    /// The newest checkpoint, if any.
    pub fn last_checkpoint(&self) -> Option<(usize, PathBuf)> {
        self.list_checkpoints().pop()
    }
}

/// The reproducibility report `run.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    /// Run id (hash of the resolved config).
    pub run_id: String,
    /// Experiment name.
    pub name: String,
    /// Seed.
    pub seed: u64,
    /// tinylab version.
    pub tinylab_version: String,
    /// `git rev-parse HEAD` of the working directory, if any.
    pub git_sha: Option<String>,
    /// Host name.
    pub host: String,
    /// Compute threads (RAYON_NUM_THREADS).
    pub threads: usize,
    /// Start, Unix seconds.
    pub start_unix: u64,
    /// End, Unix seconds (None while running).
    pub end_unix: Option<u64>,
    /// Wall time of this invocation, seconds.
    pub wall_time_s: Option<f64>,
    /// Step this invocation resumed from, if it resumed.
    pub resumed_from_step: Option<usize>,
    /// Steps completed.
    pub steps_done: usize,
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// `git rev-parse HEAD`, if git and a repository are there.
pub fn git_sha() -> Option<String> {
    let out = std::process::Command::new("git").args(["rev-parse", "HEAD"]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The machine's host name.
pub fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|s| s.trim().to_string())
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = std::env::temp_dir().join(format!("tinylab-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("x.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn run_id_is_stable() {
        assert_eq!(run_id("a"), run_id("a"));
        assert_ne!(run_id("a"), run_id("b"));
        assert_eq!(run_id("").len(), 10);
    }
}
