//! `tinylab inspect RUN`: parameters (shape, Frobenius norm, frozen), checkpoint and checks.

use std::path::PathBuf;

use anyhow::{Context, Result};
use candle_core::{DType, Device};
use clap::Args;
use tinylab_model::Model;
use tinylab_train::{checkpoint, Experiment, RunDir, Summary};

/// Arguments of `tinylab inspect`.
#[derive(Args)]
pub struct InspectArgs {
    /// A run directory (holding config.toml and checkpoints/).
    pub run: PathBuf,
}

/// Runs the command; returns the process exit code.
pub fn main(a: InspectArgs) -> Result<u8> {
    let rd = RunDir::new(&a.run);
    let text = std::fs::read_to_string(rd.config())
        .with_context(|| format!("{} is not a run directory", a.run.display()))?;
    let exp = Experiment::from_str(&text, &rd.config().display().to_string(), "run", &[], None)?;
    let mut model = Model::new(&exp.model, exp.seed, &Device::Cpu, DType::F32)?;
    match rd.last_checkpoint() {
        Some((step, path)) => {
            let (tensors, _) = checkpoint::load(&path)?;
            model.load_weights(&tensors)?;
            println!("{} seed {} — checkpoint step {step} ({})", exp.name, exp.seed, path.display());
        }
        None => println!("{} seed {} — no checkpoint; showing initial weights", exp.name, exp.seed),
    }
    println!("{:<28} {:>16} {:>10}", "parameter", "shape", "‖·‖_F");
    for (name, t) in model.params().all() {
        let norm = t.sqr()?.sum_all()?.sqrt()?.to_scalar::<f32>()?;
        let frozen = if model.params().is_frozen(&name) { "frozen" } else { "" };
        println!("{name:<28} {:>16} {norm:>10.4} {frozen}", format!("{:?}", t.dims()));
    }
    println!("trainable scalars: {}", model.params().num_trainable());
    if let Ok(bytes) = std::fs::read(rd.summary()) {
        let s: Summary = serde_json::from_slice(&bytes)?;
        println!("\nsteps {}  wall {:.1}s", s.steps, s.wall_time_s);
        for (k, v) in &s.final_metrics {
            println!("{k:<28} {v:.4}");
        }
        print!("{}", tinylab_train::checks::format_table(&s.checks));
    }
    Ok(0)
}
