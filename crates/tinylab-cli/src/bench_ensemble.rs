//! `tinylab bench --experiment FILE [--members S]`: one training step of `S` seeds of an
//! experiment's model trained seed-batched (one graph, weights stacked over members) against
//! `S` sequential PyTorch runs of the same model and step (`scripts/torch_bench.py --model
//! cat`) and against one solo tinylab step, each timed in its own process with a fixed thread
//! count, rounds interleaved. Rows are appended to the results file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{DType, Device};
use serde_json::{json, Value};
use tinylab_model::{
    Activation, AttentionKind, EmbeddingKind, EnsembleModel, ForwardOptions, InputKind, Model, NormKind,
    PositionalKind, QkNormKind, ReadoutKind, WeightsKind,
};
use tinylab_tasks::Batch;
use tinylab_train::data::{DataSource, DeviceBatch};
use tinylab_train::ensemble_optim::{clip_per_member, EnsembleOptimizer};
use tinylab_train::ensemble_step::forward_backward;
use tinylab_train::optim::clip_grad_norm;
use tinylab_train::Experiment;

use crate::bench::{cpu_model, run_json, BenchArgs};

/// The experiment of every seed `0..members` and each one's first training batch.
fn setup(config: &Path, members: usize) -> Result<(Vec<Experiment>, Vec<Batch>)> {
    let exps = (0..members as u64)
        .map(|s| Experiment::load(config, &[], Some(s)).map_err(|e| anyhow::anyhow!("{e}")))
        .collect::<Result<Vec<_>>>()?;
    let batches = exps
        .iter()
        .map(|e| {
            let t = &e.train;
            Ok(DataSource::new(e.task.build()?, t.data, t.pool_size, t.batch_size, e.seed).next_batch())
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((exps, batches))
}

/// Timings of a run of steps (seconds).
pub(crate) struct Timing {
    /// Median wall time of a step.
    pub median: f64,
    /// Fastest step.
    pub min: f64,
    /// Median of each phase the step reports: forward, backward, update.
    phases: [f64; 3],
    /// CPU time of the process (all threads) per step: the work done, whatever else runs.
    pub cpu: f64,
}

/// Times `steps` calls of `step` after `warmup` untimed ones.
pub(crate) fn time_steps(
    steps: usize,
    warmup: usize,
    mut step: impl FnMut() -> Result<[f64; 3]>,
) -> Result<Timing> {
    let (mut times, mut phases) = (Vec::with_capacity(steps), [vec![], vec![], vec![]]);
    let mut cpu0 = 0.0;
    for i in 0..warmup + steps {
        if i == warmup {
            cpu0 = process_cpu_s();
        }
        let t0 = Instant::now();
        let p = step()?;
        if i >= warmup {
            times.push(t0.elapsed().as_secs_f64());
            phases.iter_mut().zip(p).for_each(|(v, x)| v.push(x));
        }
    }
    let cpu = (process_cpu_s() - cpu0) / steps as f64;
    let min = times.iter().copied().fold(f64::INFINITY, f64::min);
    Ok(Timing { median: median(times), min, phases: phases.map(median), cpu })
}

/// CPU seconds (user + system) this process has used, all threads.
fn process_cpu_s() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// Seconds since `t`, and resets `t`.
fn lap(t: &mut Instant) -> f64 {
    let s = t.elapsed().as_secs_f64();
    *t = Instant::now();
    s
}

/// Times training steps in this process: `kind` = `ensemble` (all members batched) or `solo`
/// (seed 0 alone, as the solo trainer steps). One JSON object.
pub fn worker(kind: &str, config: &Path, members: usize, steps: usize, warmup: usize) -> Result<Value> {
    let threads: usize = std::env::var("RAYON_NUM_THREADS").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    let (exps, batches) = setup(config, if kind == "solo" { 1 } else { members })?;
    let (exp, tr, dev) = (&exps[0], &exps[0].train, Device::Cpu);
    let lr = tr.optimizer.lr;
    let (timing, params) = match kind {
        "ensemble" => {
            let seeds: Vec<u64> = exps.iter().map(|e| e.seed).collect();
            let model = EnsembleModel::new(&exp.model, &seeds, &dev, DType::F32)?;
            let mut opt = EnsembleOptimizer::new(&tr.optimizer, model.params().trainable(), members)?;
            let shards = crate::bench::data_parallel_shards();
            let timing = time_steps(steps, warmup, || {
                let mut t = Instant::now();
                let mut grads = forward_backward(&model, &batches, opt.params(), shards, false)?.grads;
                let forward = 0.0; // one phase: the slices run forward and backward in parallel
                let backward = lap(&mut t);
                if tr.grad_clip > 0.0 {
                    clip_per_member(&mut grads, opt.params(), members, tr.grad_clip)?;
                }
                opt.step(&grads, lr)?;
                Ok([forward, backward, lap(&mut t)])
            })?;
            (timing, model.params().num_trainable())
        }
        "solo" => {
            let model = Model::new(&exp.model, exp.seed, &dev, DType::F32)?;
            let mut opt = tr.optimizer.build(model.params().trainable())?;
            let timing = time_steps(steps, warmup, || {
                let mut t = Instant::now();
                let db = DeviceBatch::new(&batches[0], &dev)?;
                let opts = ForwardOptions { select: Some(&db.select), hooks: None };
                let logits = model.forward(&db.tokens, opts)?.logits;
                let loss = candle_nn::loss::cross_entropy(&logits, &db.targets)?;
                let forward = lap(&mut t);
                let mut grads = loss.backward()?;
                let backward = lap(&mut t);
                if tr.grad_clip > 0.0 {
                    clip_grad_norm(&mut grads, opt.params(), tr.grad_clip)?;
                }
                opt.step(&grads, lr)?;
                Ok([forward, backward, lap(&mut t)])
            })?;
            (timing, model.params().num_trainable())
        }
        other => anyhow::bail!("unknown worker kind `{other}`"),
    };
    let b = &batches[0];
    Ok(json!({
        "impl": format!("tinylab-{kind}"), "threads": threads, "members": exps.len(),
        "experiment": config.display().to_string(), "d_model": exp.model.d_model, "seq_len": b.seq_len,
        "batch": b.batch_size, "labelled": b.num_labelled(), "params": params, "steps": steps,
        "median_step_s": timing.median, "steps_per_s": 1.0 / timing.median, "min_step_s": timing.min,
        "cpu_s_per_step": timing.cpu,
        "median_phase_s": {"forward": timing.phases[0], "backward": timing.phases[1], "update": timing.phases[2]},
    }))
}

/// `scripts/torch_bench.py` arguments for the experiment's model, or `None` when the PyTorch
/// reference does not implement it. Two families: `--model cat` (the CAT model of
/// experiments/cat: convolutions on q/k/v, L2 q/k with temperature, pre-LN, no positions) and
/// `--model gpt` (pre-LN or norm-free blocks, softmax or linear attention, optional GELU MLP,
/// learned or no positions, learned or frozen one-hot embedding with the tied unembedding,
/// optionally a frozen identity `W_K`: experiments/parity and experiments/ocr). Labelled positions
/// per sequence are passed on (logits only there); both time the same matmul shapes, not the
/// same initialization.
fn torch_args(exp: &Experiment, batch: &Batch) -> Option<Vec<String>> {
    let m = &exp.model;
    let per_seq = batch.num_labelled() / batch.batch_size;
    let uniform_labels = batch.num_labelled().is_multiple_of(batch.batch_size) && per_seq > 0;
    let common = m.weights == WeightsKind::Factorized
        && m.d_head == 0
        && m.d_value == 0
        && m.input == InputKind::Tokens
        && m.readout == ReadoutKind::Unembed
        && m.attend_self
        && uniform_labels;
    let cat = common
        && m.conv_q
        && m.conv_k
        && m.conv_v
        && m.qk_norm == QkNormKind::L2
        && m.norm == NormKind::LayerNorm
        && m.positional == PositionalKind::None
        && m.attention == AttentionKind::Softmax
        && !m.mlp
        && m.residual
        && !m.tied_unembed
        && m.freeze.is_empty();
    let mut args = vec![
        ("--d-model", m.d_model.to_string()),
        ("--seq-len", batch.seq_len.to_string()),
        ("--batch", batch.batch_size.to_string()),
        ("--layers", m.n_layers.to_string()),
        ("--heads", m.n_heads.to_string()),
        ("--vocab", m.vocab_size.to_string()),
        ("--labelled", per_seq.to_string()),
    ];
    if cat {
        args.extend([
            ("--model", "cat".to_string()),
            ("--conv-kernel", m.conv_kernel.to_string()),
            ("--qk-scale-init", m.qk_scale_init.to_string()),
        ]);
        return Some(args.into_iter().flat_map(|(k, v)| [k.to_string(), v]).collect());
    }
    let one_hot = m.embedding == EmbeddingKind::OneHot && m.tied_unembed && m.vocab_size == m.d_model;
    let frozen: Vec<&str> = if one_hot { vec!["W_K", "embed.W_E"] } else { vec![] };
    let identity_k = m.freeze.iter().any(|f| f == "W_K") && m.identity_init.iter().any(|f| f == "W_K");
    let gpt = common
        && !(m.conv_q || m.conv_k || m.conv_v)
        && m.qk_norm == QkNormKind::None
        && matches!(m.norm, NormKind::LayerNorm | NormKind::None)
        && matches!(m.positional, PositionalKind::Learned | PositionalKind::None)
        && m.activation == Activation::Gelu
        && (m.d_mlp == 0 || m.d_mlp == 4 * m.d_model)
        && (m.embedding == EmbeddingKind::Learned && !m.tied_unembed || one_hot)
        && m.freeze.iter().all(|f| frozen.contains(&f.as_str()) || f == "W_K" && identity_k);
    if !gpt {
        return None;
    }
    args.push(("--model", "gpt".to_string()));
    args.push(("--attn", if m.attention == AttentionKind::Linear { "linear" } else { "eager" }.to_string()));
    let flags = [
        (!m.mlp, "--no-mlp"),
        (m.norm == NormKind::None, "--norm=none"),
        (!m.residual, "--no-residual"),
        (m.positional == PositionalKind::None, "--positions=none"),
        (one_hot, "--onehot"),
        (identity_k, "--identity-k"),
    ];
    let mut out: Vec<String> = args.into_iter().flat_map(|(k, v)| [k.to_string(), v]).collect();
    out.extend(flags.iter().filter(|f| f.0).map(|f| f.1.to_string()));
    Some(out)
}

/// The 1-minute load average (other work on the machine skews the timings).
fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg").ok()?.split_whitespace().next()?.parse().ok()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs the seed-batched benchmark; returns the exit code.
pub fn main(a: &BenchArgs, config: &Path) -> Result<u8> {
    let s = a.members;
    let (exps, batches) = setup(config, 1)?;
    let python = a.python.clone().unwrap_or_else(|| PathBuf::from("scripts/.venv/bin/python"));
    let torch = match (a.no_torch, python.exists(), torch_args(&exps[0], &batches[0])) {
        (false, true, Some(args)) => Some(args),
        (true, _, _) => None,
        (false, false, _) => {
            eprintln!(
                "note: no PyTorch reference ({} missing; run scripts/setup_torch.sh)",
                python.display()
            );
            None
        }
        (false, true, None) => {
            eprintln!("note: the PyTorch reference does not implement this model (see scripts/README.md); timing tinylab alone");
            None
        }
    };
    let exe = std::env::current_exe()?;
    let (steps, warmup) = (a.steps.to_string(), a.warmup.to_string());
    let ours = |kind: &str, th: usize| {
        let mut c = Command::new(&exe);
        c.args([
            "bench",
            "--worker",
            kind,
            "--members",
            &s.to_string(),
            "--steps",
            &steps,
            "--warmup",
            &warmup,
        ])
        .arg("--experiment")
        .arg(config)
        .env("RAYON_NUM_THREADS", th.to_string());
        run_json(&mut c)
    };
    if let Some(dir) = a.out.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&a.out)?;
    let (machine, commit) = (cpu_model(), tinylab_train::rundir::git_sha().unwrap_or_default());
    println!("| threads | tinylab solo ms/step | tinylab {s} seeds batched ms/step | pytorch ms/step | {s} pytorch runs ÷ batched | {s} solo ÷ batched |");
    println!("|---|---|---|---|---|---|");
    for &th in &a.threads {
        let (mut rows, mut t_solo, mut t_ens, mut t_torch) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..a.repeats.max(1) {
            let solo = ours("solo", th)?;
            let ens = ours("ensemble", th)?;
            // the PyTorch reference in both of its convolution forms; the faster one counts
            let mut pt: Option<Value> = None;
            let is_cat = torch.as_ref().is_some_and(|a| a.iter().any(|x| x == "cat"));
            let forms: &[&str] = if is_cat { &["shift", "conv1d"] } else { &["shift"] };
            for conv in forms {
                let Some(args) = &torch else { break };
                let mut c = Command::new(&python);
                c.args(["scripts/torch_bench.py", "--conv-impl", conv])
                    .args(["--threads", &th.to_string(), "--warmup", &warmup, "--steps", &steps])
                    .args(args);
                let v = run_json(&mut c).context("PyTorch reference")?;
                let faster = |a: &Value, b: &Value| a["median_step_s"].as_f64() < b["median_step_s"].as_f64();
                if pt.as_ref().is_none_or(|best| faster(&v, best)) {
                    pt = Some(v);
                }
            }
            let ms = |v: &Value| v["median_step_s"].as_f64().unwrap_or(f64::NAN) * 1e3;
            t_solo.push(ms(&solo));
            t_ens.push(ms(&ens));
            t_torch.extend(pt.as_ref().map(ms));
            rows.push(json!({"tinylab_solo": solo, "tinylab_batched": ens, "pytorch": pt, "loadavg_1m": load_average()}));
        }
        let (solo, ens) = (median(t_solo), median(t_ens));
        let pt = (!t_torch.is_empty()).then(|| median(t_torch));
        let vs_torch = pt.map(|p| s as f64 * p / ens);
        let f = |x: Option<f64>| x.map_or("-".into(), |x| format!("{x:.2}"));
        println!(
            "| {th} | {solo:.1} | {ens:.1} | {} | {} | {:.2} |",
            f(pt),
            f(vs_torch),
            s as f64 * solo / ens
        );
        let row = json!({
            "unix": tinylab_train::rundir::now_unix(), "machine": machine, "commit": commit,
            "bench": "seed_batched", "experiment": config.display().to_string(), "members": s, "threads": th,
            "median_ms": {"tinylab_solo": solo, "tinylab_batched": ens, "pytorch": pt},
            "speedup_vs_pytorch_runs": vs_torch, "speedup_vs_solo_runs": s as f64 * solo / ens, "rounds": rows,
        });
        writeln!(file, "{row}")?;
    }
    eprintln!("rows appended to {}", a.out.display());
    Ok(0)
}
