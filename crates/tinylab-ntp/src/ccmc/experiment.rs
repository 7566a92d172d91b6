//! The CCMC runner: validates the file, opens the run directory, runs each section
//! (`estimation`, `coverage`, `generation`, `single`) and evaluates the checks.

use std::path::Path;

use anyhow::{bail, Result};
use tinylab_train::Summary;

use super::*;
use crate::rundir::{resolved, validate_checks, Run};

/// Runs a CCMC experiment into a run directory.
pub fn run(mut exp: CcmcExperiment, default_name: &str, out: Option<&Path>) -> Result<Summary> {
    if exp.name.is_empty() {
        exp.name = default_name.to_string();
    }
    if exp.estimation.is_none() && exp.coverage.is_none() && exp.generation.is_none() && exp.single.is_none()
    {
        bail!("a ccmc experiment needs [estimation], [coverage], [generation] and/or [single]");
    }
    validate_checks(&exp.check, &known_metrics(&exp))?;
    let (full, id) = resolved(&exp)?;
    let mut run = Run::create(out, &exp.name, exp.seed, &full, &id)?;
    eprintln!("run {} (seed {}) → {}", exp.name, exp.seed, run.dir.display());
    let mut steps = 0;
    if let Some(e) = exp.estimation.clone() {
        estimation(&mut run, &exp, &e)?;
        steps = *e.sizes.iter().max().unwrap_or(&0);
    }
    if let Some(c) = exp.coverage.clone() {
        coverage(&mut run, &exp, &c)?;
        steps = steps.max(*c.sizes.iter().max().unwrap_or(&0));
    }
    if let Some(g) = exp.generation.clone() {
        generation(&mut run, &exp, &g)?;
        steps = steps.max(g.steps);
    }
    if let Some(c) = exp.single.clone() {
        single(&mut run, &exp, &c)?;
        steps = steps.max(*c.lengths.iter().max().unwrap_or(&0));
    }
    run.finish(&exp.check, steps)
}
