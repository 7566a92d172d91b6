//! `tinylab bench`: steps per second of forward + backward + AdamW for the benchmark sizes,
//! measured side by side with the PyTorch reference (`scripts/torch_bench.py`), each in its own
//! process with a fixed thread count. Rows are appended to a JSONL file. With `--experiment`,
//! times seed-batched training instead (see `bench_ensemble`).

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use clap::Args;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tinylab_model::{ForwardOptions, Model, ModelConfig, PositionalKind};
use tinylab_train::optim::OptimConfig;

/// Arguments of `tinylab bench`.
#[derive(Args)]
pub struct BenchArgs {
    /// Sizes to time: tiny (d32 T32 B32), small (d64 T64 B64), medium (d128 T256 B64).
    #[arg(long, value_delimiter = ',', default_value = "tiny,small,medium")]
    pub sizes: Vec<String>,
    /// Thread counts to time.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    pub threads: Vec<usize>,
    /// Timed steps per measurement (after warmup).
    #[arg(long, default_value_t = 20)]
    pub steps: usize,
    /// Untimed warmup steps.
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    /// Python with torch for the reference (default: scripts/.venv/bin/python if present).
    #[arg(long)]
    pub python: Option<PathBuf>,
    /// Skip the PyTorch reference.
    #[arg(long)]
    pub no_torch: bool,
    /// File the result rows are appended to.
    #[arg(long, default_value = "bench/results.jsonl")]
    pub out: PathBuf,
    /// Time seed-batched training of this experiment instead (e.g.
    /// experiments/cat/cat_mqar.toml): `--members` seeds in one batched graph vs as many
    /// sequential PyTorch runs of the same model and vs solo tinylab steps.
    #[arg(long)]
    pub experiment: Option<PathBuf>,
    /// With --experiment: number of seeds trained batched.
    #[arg(long, default_value_t = 8)]
    pub members: usize,
    /// With --experiment: interleaved rounds per thread count (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub repeats: usize,
    /// Internal: time one configuration in this process and print one JSON line.
    #[arg(long, hide = true)]
    pub worker: Option<String>,
}

/// `(name, d_model, seq_len, batch)` of the foundation's benchmark sizes (2 layers, 4 heads,
/// MLP, learned positions, vocabulary 64).
const SIZES: &[(&str, usize, usize, usize)] =
    &[("tiny", 32, 32, 32), ("small", 64, 64, 64), ("medium", 128, 256, 64)];

fn size(name: &str) -> Result<(usize, usize, usize)> {
    SIZES
        .iter()
        .find(|s| s.0 == name)
        .map(|s| (s.1, s.2, s.3))
        .with_context(|| format!("unknown size `{name}`; allowed: tiny, small, medium"))
}

/// Runs the command; returns the process exit code.
pub fn main(a: BenchArgs) -> Result<u8> {
    if let (Some(kind), Some(config)) = (&a.worker, &a.experiment) {
        println!("{}", crate::bench_ensemble::worker(kind, config, a.members, a.steps, a.warmup)?);
        return Ok(0);
    }
    if let Some(name) = &a.worker {
        println!("{}", worker(name, a.steps, a.warmup)?);
        return Ok(0);
    }
    if let Some(config) = &a.experiment {
        return crate::bench_ensemble::main(&a, config);
    }
    let python = a.python.clone().unwrap_or_else(|| PathBuf::from("scripts/.venv/bin/python"));
    let torch = !a.no_torch && python.exists() && PathBuf::from("scripts/torch_bench.py").exists();
    if !a.no_torch && !torch {
        eprintln!("note: no PyTorch reference ({} missing; run scripts/setup_torch.sh)", python.display());
    }
    let exe = std::env::current_exe()?;
    let machine = cpu_model();
    let commit = tinylab_train::rundir::git_sha().unwrap_or_default();
    if let Some(dir) = a.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&a.out)?;
    println!("| size | threads | tinylab steps/s | pytorch eager steps/s | ratio |");
    println!("|---|---|---|---|---|");
    for s in &a.sizes {
        let (d, t, b) = size(s)?;
        for &th in &a.threads {
            let ours = run_json(
                Command::new(&exe)
                    .args([
                        "bench",
                        "--worker",
                        s,
                        "--steps",
                        &a.steps.to_string(),
                        "--warmup",
                        &a.warmup.to_string(),
                    ])
                    .env("RAYON_NUM_THREADS", th.to_string()),
            )?;
            let theirs = if torch {
                Some(run_json(Command::new(&python).args([
                    "scripts/torch_bench.py",
                    "--d-model",
                    &d.to_string(),
                    "--seq-len",
                    &t.to_string(),
                    "--batch",
                    &b.to_string(),
                    "--layers",
                    "2",
                    "--heads",
                    "4",
                    "--vocab",
                    "64",
                    "--attn",
                    "eager",
                    "--threads",
                    &th.to_string(),
                    "--warmup",
                    &a.warmup.to_string(),
                    "--steps",
                    &a.steps.to_string(),
                ]))?)
            } else {
                None
            };
            let ours_sps = ours["steps_per_s"].as_f64().unwrap_or(f64::NAN);
            let theirs_sps = theirs.as_ref().and_then(|v| v["steps_per_s"].as_f64());
            let ratio = theirs_sps.map(|x| ours_sps / x);
            println!(
                "| {s} | {th} | {ours_sps:.2} | {} | {} |",
                theirs_sps.map(|x| format!("{x:.2}")).unwrap_or("-".into()),
                ratio.map(|x| format!("{x:.2}")).unwrap_or("-".into())
            );
            let row = json!({
                "unix": tinylab_train::rundir::now_unix(), "machine": machine, "commit": commit,
                "size": s, "threads": th, "tinylab": ours, "pytorch": theirs, "ratio": ratio,
            });
            writeln!(file, "{row}")?;
        }
    }
    eprintln!("rows appended to {}", a.out.display());
    Ok(0)
}

/// Runs a benchmark process and parses the JSON object on the last line of its stdout.
pub(crate) fn run_json(cmd: &mut Command) -> Result<Value> {
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or("");
    serde_json::from_str(line).with_context(|| format!("parsing `{line}` from {cmd:?}"))
}

/// The CPU model name from /proc/cpuinfo.
pub(crate) fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Times `steps` training steps of one size in this process; returns the JSON row.
fn worker(name: &str, steps: usize, warmup: usize) -> Result<Value> {
    let (d, t, b) = size(name)?;
    let v = 64;
    let cfg = ModelConfig {
        d_model: d,
        n_layers: 2,
        n_heads: 4,
        vocab_size: v,
        positional: PositionalKind::Learned,
        max_seq_len: t,
        mlp: true,
        ..Default::default()
    };
    let dev = Device::Cpu;
    let model = Model::new(&cfg, 0, &dev, DType::F32)?;
    let mut opt = OptimConfig::default().build(model.params().trainable())?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let toks: Vec<u32> = (0..b * t).map(|_| rng.gen_range(0..v as u32)).collect();
    let tgts: Vec<u32> = (0..b * t).map(|_| rng.gen_range(0..v as u32)).collect();
    let tokens = Tensor::from_vec(toks, (b, t), &dev)?;
    let targets = Tensor::from_vec(tgts, b * t, &dev)?;
    let mut times = Vec::with_capacity(steps);
    for i in 0..warmup + steps {
        let start = Instant::now();
        let logits = model.forward(&tokens, ForwardOptions::default())?.logits.reshape((b * t, v))?;
        let loss = candle_nn::loss::cross_entropy(&logits, &targets)?;
        let grads = loss.backward()?;
        opt.step(&grads, 1e-3)?;
        if i >= warmup {
            times.push(start.elapsed().as_secs_f64());
        }
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let threads: usize = std::env::var("RAYON_NUM_THREADS").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok(json!({
        "impl": "tinylab", "threads": threads, "d_model": d, "seq_len": t, "batch": b, "layers": 2, "heads": 4,
        "vocab": v, "mlp": true, "params": model.params().num_trainable(), "steps": steps,
        "median_step_s": median, "steps_per_s": 1.0 / median, "min_step_s": times[0],
    }))
}
