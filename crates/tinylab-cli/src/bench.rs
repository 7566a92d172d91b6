//! `tinylab bench`: steps per second of forward + backward + AdamW for the benchmark sizes,
//! measured side by side with the PyTorch reference (`scripts/torch_bench.py`), each in its own
//! process with a fixed thread count. Rows are appended to a JSONL file. With `--experiment`,
//! times seed-batched training instead (see `bench_ensemble`).

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use clap::Args;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tinylab_model::{EnsembleModel, ForwardOptions, Model, ModelConfig, PositionalKind};
use tinylab_tasks::Batch;
use tinylab_train::ensemble_optim::EnsembleOptimizer;
use tinylab_train::ensemble_step::forward_backward;

use crate::bench_ensemble::time_steps;
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
    /// Only measure the machine's FMA peak (GFLOP/s per core and on all cores; also done
    /// before every size benchmark, whose rows report achieved GFLOP/s against it).
    #[arg(long)]
    pub peak: bool,
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
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let peak = crate::bench_peak::measure(cores);
    let unix = tinylab_train::rundir::now_unix();
    writeln!(
        file,
        "{}",
        json!({"unix": unix, "machine": machine, "commit": commit, "bench": "fma_peak", "peak": peak})
    )?;
    let gf = |k: &str| peak[k].as_f64().map_or("-".into(), |x| format!("{x:.0}"));
    println!(
        "FMA peak GFLOP/s: AVX-512 {} per core, {} on {cores} cores; AVX2 {} per core, {} on {cores} cores",
        gf("avx512_gflops_1core"),
        gf("avx512_gflops_all"),
        gf("avx2_gflops_1core"),
        gf("avx2_gflops_all")
    );
    if a.peak {
        return Ok(0);
    }
    // the best peak for the thread count: AVX-512 if the CPU has it
    let peak_for = |threads: usize| {
        let (one, all) = match peak["avx512_gflops_1core"].as_f64() {
            Some(x) => (x, peak["avx512_gflops_all"].as_f64().unwrap_or(x)),
            None => (
                peak["avx2_gflops_1core"].as_f64().unwrap_or(f64::NAN),
                peak["avx2_gflops_all"].as_f64().unwrap_or(f64::NAN),
            ),
        };
        if threads <= 1 {
            one
        } else {
            all * threads.min(cores) as f64 / cores as f64
        }
    };
    println!(
        "| size | threads | tinylab steps/s | tinylab --fused steps/s | pytorch eager steps/s | ratio | \
         fused ratio | tinylab GFLOP/s | fused GFLOP/s | pytorch GFLOP/s | best tinylab % of FMA peak |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for s in &a.sizes {
        let (d, t, b) = size(s)?;
        for &th in &a.threads {
            let time_ours = |worker: String| {
                run_json(
                    Command::new(&exe)
                        .args(["bench", "--worker", &worker, "--steps", &a.steps.to_string()])
                        .args(["--warmup", &a.warmup.to_string()])
                        .env("RAYON_NUM_THREADS", th.to_string()),
                )
            };
            let ours = time_ours(s.clone())?;
            let fused = time_ours(format!("{s}:fused"))?;
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
            let sps = |v: &Value| v["steps_per_s"].as_f64().unwrap_or(f64::NAN);
            let (ours_sps, fused_sps) = (sps(&ours), sps(&fused));
            let theirs_sps = theirs.as_ref().map(sps);
            let ratio = theirs_sps.map(|x| ours_sps / x);
            let fused_ratio = theirs_sps.map(|x| fused_sps / x);
            let flops = train_flops_per_step(d, t, b, 2, 4, 64, true);
            let gflops = |steps_per_s: f64| flops * steps_per_s / 1e9;
            let share = gflops(ours_sps.max(fused_sps)) / peak_for(th);
            let f = |x: Option<f64>, p: usize| x.map_or("-".into(), |x| format!("{x:.p$}"));
            println!(
                "| {s} | {th} | {ours_sps:.2} | {fused_sps:.2} | {} | {} | {} | {:.1} | {:.1} | {} | {:.1} % |",
                f(theirs_sps, 2),
                f(ratio, 2),
                f(fused_ratio, 2),
                gflops(ours_sps),
                gflops(fused_sps),
                f(theirs_sps.map(gflops), 1),
                100.0 * share
            );
            let row = json!({
                "unix": tinylab_train::rundir::now_unix(), "machine": machine, "commit": commit,
                "size": s, "threads": th, "tinylab": ours, "tinylab_fused": fused, "pytorch": theirs,
                "ratio": ratio, "fused_ratio": fused_ratio,
                "train_flops_per_step": flops, "tinylab_gflops": gflops(ours_sps),
                "tinylab_fused_gflops": gflops(fused_sps), "pytorch_gflops": theirs_sps.map(gflops),
                "fma_peak_gflops": peak_for(th), "tinylab_best_share_of_peak": share,
            });
            writeln!(file, "{row}")?;
        }
    }
    eprintln!("rows appended to {}", a.out.display());
    Ok(0)
}

/// Training FLOPs of one step of the benchmark transformer, counted as `scripts/torch_bench.py
/// --flops` counts them: 3 × the forward matmul FLOPs, forward = `2·B·T·P_mm + L·4·B·H·T²·d_head`
/// with `P_mm = L·(4d² + [mlp] 8d²) + d·vocab` (projections, MLP, unembedding; the full `T × T`
/// scores, no discount for the causal mask).
pub(crate) fn train_flops_per_step(
    d: usize,
    t: usize,
    b: usize,
    layers: usize,
    heads: usize,
    vocab: usize,
    mlp: bool,
) -> f64 {
    let p_mm = layers * (4 * d * d + if mlp { 8 * d * d } else { 0 }) + d * vocab;
    let fwd = 2 * b * t * p_mm + layers * 4 * b * heads * t * t * (d / heads);
    3.0 * fwd as f64
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

/// In a fused/ensemble benchmark worker: the thread count the parent gave
/// (`RAYON_NUM_THREADS`) becomes that many data-parallel slices, and candle runs
/// single-threaded, as `tinylab run --fused --threads N` trains. Call before any tensor op.
pub(crate) fn data_parallel_shards() -> usize {
    let threads = std::env::var("RAYON_NUM_THREADS").ok().and_then(|s| s.parse().ok()).unwrap_or(1usize);
    std::env::set_var("RAYON_NUM_THREADS", "1");
    threads.max(1)
}

/// The benchmark transformer: 2 pre-LN layers, 4 heads, GELU MLP, learned positions.
fn bench_config(d: usize, t: usize, v: usize) -> ModelConfig {
    ModelConfig {
        d_model: d,
        n_layers: 2,
        n_heads: 4,
        vocab_size: v,
        positional: PositionalKind::Learned,
        max_seq_len: t,
        mlp: true,
        ..Default::default()
    }
}

/// One random batch of the benchmark: `b × t` tokens, every position labelled.
fn random_batch(b: usize, t: usize, v: usize) -> Batch {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut batch = Batch::empty(b, t);
    batch.inputs.iter_mut().for_each(|x| *x = rng.gen_range(0..v as u32));
    batch.targets.iter_mut().for_each(|x| *x = rng.gen_range(0..v as i32));
    batch
}

/// Times `steps` training steps of one size in this process; returns the JSON row. `NAME`
/// times the default engine (candle graph of `Model`, candle's threads), `NAME:fused` the
/// fused engine (`tinylab run --fused`: the seed-batched model with one member, the threads as
/// data-parallel slices).
fn worker(name: &str, steps: usize, warmup: usize) -> Result<Value> {
    let (size_name, fused) = match name.strip_suffix(":fused") {
        Some(n) => (n, true),
        None => (name, false),
    };
    let (d, t, b) = size(size_name)?;
    let v = 64;
    let (cfg, dev) = (bench_config(d, t, v), Device::Cpu);
    let batch = random_batch(b, t, v);
    let (timing, params, threads) = if fused {
        let shards = data_parallel_shards();
        let model = EnsembleModel::new(&cfg, &[0], &dev, DType::F32)?;
        let mut opt = EnsembleOptimizer::new(&OptimConfig::default(), model.params().trainable(), 1)?;
        let batch = [batch];
        let timing = time_steps(steps, warmup, || {
            let grads = forward_backward(&model, &batch, opt.params(), shards, false)?.grads;
            opt.step(&grads, 1e-3)?;
            Ok([0.0; 3])
        })?;
        (timing, model.params().num_trainable(), shards)
    } else {
        let model = Model::new(&cfg, 0, &dev, DType::F32)?;
        let mut opt = OptimConfig::default().build(model.params().trainable())?;
        let tokens = Tensor::from_vec(batch.inputs.clone(), (b, t), &dev)?;
        let targets: Vec<u32> = batch.targets.iter().map(|&y| y as u32).collect();
        let targets = Tensor::from_vec(targets, b * t, &dev)?;
        let timing = time_steps(steps, warmup, || {
            let logits = model.forward(&tokens, ForwardOptions::default())?.logits.reshape((b * t, v))?;
            let grads = candle_nn::loss::cross_entropy(&logits, &targets)?.backward()?;
            opt.step(&grads, 1e-3)?;
            Ok([0.0; 3])
        })?;
        let threads = std::env::var("RAYON_NUM_THREADS").ok().and_then(|s| s.parse().ok()).unwrap_or(0usize);
        (timing, model.params().num_trainable(), threads)
    };
    Ok(json!({
        "impl": if fused { "tinylab-fused" } else { "tinylab" }, "threads": threads, "d_model": d, "seq_len": t,
        "batch": b, "layers": 2, "heads": 4, "vocab": v, "mlp": true, "params": params, "steps": steps,
        "median_step_s": timing.median, "steps_per_s": 1.0 / timing.median, "min_step_s": timing.min,
        "cpu_s_per_step": timing.cpu,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medium_step_is_52_gflop_as_perf_notes_count_it() {
        // d 128, T 256, B 64, 2 layers, 4 heads, vocab 64, MLP: 52.4 GFLOP (shared/perf-notes.md)
        let f = train_flops_per_step(128, 256, 64, 2, 4, 64, true);
        assert!((f / 1e9 - 52.34).abs() < 0.01, "{f}");
        assert!(
            train_flops_per_step(32, 32, 32, 2, 4, 64, false)
                < train_flops_per_step(32, 32, 32, 2, 4, 64, true)
        );
    }
}
