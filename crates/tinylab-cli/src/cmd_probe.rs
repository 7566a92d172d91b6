//! `tinylab probe RUN --what KIND`: one analysis of a trained run, written under the run's
//! `probes/` and `plots/`, its scalars printed.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;
use tinylab_train::experiment::ProbeSpec;

use crate::probe_stage::{validate, ProbeContext, PROBES};

/// Arguments of `tinylab probe`.
#[derive(Args)]
pub struct ProbeArgs {
    /// A run directory.
    pub run: PathBuf,
    /// spectrum | circuits | conv | attention | logit_lens | ablate | linear_probe | layer_probe |
    /// spectrum_history | icl | ov_blocks (an unknown kind lists each with what it computes).
    #[arg(long)]
    pub what: String,
    /// Probe option `key=value` (e.g. `eval=len256`, `samples=128`), repeatable.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
}

/// Runs the command; returns the process exit code.
pub fn main(a: ProbeArgs) -> Result<u8> {
    let ctx = ProbeContext::load(&a.run)?;
    let mut options = toml::Table::new();
    for s in &a.sets {
        tinylab_train::overrides::apply(&mut options, s).map_err(anyhow::Error::msg)?;
    }
    let spec = ProbeSpec { what: a.what.replace('-', "_"), options };
    if let Err(m) = validate(&spec, &ctx.exp) {
        let kinds: Vec<String> = PROBES.iter().map(|p| format!("{} ({})", p.0, p.2)).collect();
        bail!("{m}\nprobes: {}", kinds.join("; "));
    }
    for (k, v) in ctx.run(&spec)? {
        println!("{k:<40} {v:.4}");
    }
    eprintln!("tables under {}/probes, figures under {}/plots", a.run.display(), a.run.display());
    Ok(0)
}
