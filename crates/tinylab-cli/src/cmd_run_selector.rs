//! `tinylab run` on the selector experiments of `tinylab-ntp` (`kind = "ntp" | "ccmc"`): one
//! seed, or with `--seeds` every seed in turn (each run takes seconds) into `OUT/seed<N>`,
//! then every check as mean ± std and pass count.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use tinylab_train::Summary;

use tinylab_train::checks::format_table;

use crate::cmd_run::RunArgs;
use crate::jobs::mean_std;
use crate::{EXIT_CHECK_FAILED, EXIT_CONFIG};

/// Runs the selector experiment of `a.config`; returns the exit code.
pub fn main(a: &RunArgs) -> Result<u8> {
    if a.seeds.is_empty() {
        return Ok(match tinylab_ntp::run(&a.config, &a.sets, a.seed, a.out.as_deref()) {
            Ok(s) => {
                print!("{}", format_table(&s.checks));
                if s.all_passed {
                    0
                } else {
                    EXIT_CHECK_FAILED
                }
            }
            Err(e) => {
                eprintln!("error: {}: {e:#}", a.config.display());
                EXIT_CONFIG
            }
        });
    }
    let stem = a.config.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let root = a.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(&stem));
    let mut summaries: Vec<Summary> = Vec::new();
    for &seed in &a.seeds {
        let dir = root.join(format!("seed{seed}"));
        match tinylab_ntp::run(&a.config, &a.sets, Some(seed), Some(&dir)) {
            Ok(s) => summaries.push(s),
            Err(e) => {
                eprintln!("error: {}: seed {seed}: {e:#}", a.config.display());
                return Ok(EXIT_CONFIG);
            }
        }
    }
    let mut by_check: BTreeMap<(usize, String), (Vec<f64>, usize)> = BTreeMap::new();
    for s in &summaries {
        for (i, c) in s.checks.iter().enumerate() {
            let e = by_check.entry((i, c.name.clone())).or_default();
            e.0.extend(c.measured);
            e.1 += usize::from(c.pass);
        }
    }
    println!("{:<6} {:>5}  {:>10} {:>10}  check", "result", "runs", "mean", "std");
    let mut all = true;
    for ((_, name), (values, passed)) in &by_check {
        let (m, sd) = mean_std(values);
        let status = if *passed == summaries.len() { "PASS" } else { "FAIL" };
        all &= *passed == summaries.len();
        println!("{status:<6} {passed}/{}  {m:>10.4} {sd:>10.4}  {name}", summaries.len());
    }
    let (wm, ws) = mean_std(&summaries.iter().map(|s| s.wall_time_s).collect::<Vec<_>>());
    println!("wall per run {wm:.1} ± {ws:.1} s; runs under {}", root.display());
    Ok(if all { 0 } else { EXIT_CHECK_FAILED })
}
