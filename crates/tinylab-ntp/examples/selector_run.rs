//! Runs NTP/CCMC experiment files without the CLI (`tinylab run` dispatches them too) and
//! prints every `probe.*` metric:
//! `cargo run --release -p tinylab-ntp --example selector_run -- FILE [--seed N] [--out DIR] [--set k=v]...`
//! Exit code 0 when every check passes, 1 when one fails.

use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut file = None;
    let (mut seed, mut out, mut sets) = (None, None, Vec::new());
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seed" => seed = Some(args.next().expect("--seed N").parse()?),
            "--out" => out = Some(PathBuf::from(args.next().expect("--out DIR"))),
            "--set" => sets.push(args.next().expect("--set key=value")),
            _ => file = Some(PathBuf::from(a)),
        }
    }
    let file = file.expect("usage: selector_run FILE [--seed N] [--out DIR] [--set key=value]...");
    let s = tinylab_ntp::run(&file, &sets, seed, out.as_deref())?;
    let mut finals: Vec<_> = s.final_metrics.iter().filter(|(k, _)| k.starts_with("probe.")).collect();
    finals.sort_by(|a, b| a.0.cmp(b.0));
    for (k, v) in finals {
        println!("{k:<44} {v:.6}");
    }
    println!("wall {:.1}s", s.wall_time_s);
    print!("{}", tinylab_train::checks::format_table(&s.checks));
    std::process::exit(if s.all_passed { 0 } else { 1 })
}
