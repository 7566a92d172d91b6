//! `tinylab tasks list` and `tinylab tasks show TASK`: what each generator produces.

use anyhow::{Context, Result};
use clap::Subcommand;
use tinylab_tasks::{TaskConfig, IGNORE};
use toml::{Table, Value};

/// Task subcommands.
#[derive(Subcommand)]
pub enum TasksCommand {
    /// One line per task kind.
    List,
    /// Decoded samples of one task, inputs above targets (`.` = no label).
    Show {
        /// Task kind, e.g. `mqar`.
        task: String,
        /// Override a task field: `--set seq_len=32` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        sets: Vec<String>,
        /// Number of sequences.
        #[arg(long, short, default_value_t = 2)]
        n: usize,
        /// Seed of the generator.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

/// Runs the command; returns the process exit code.
pub fn main(c: TasksCommand) -> Result<u8> {
    match c {
        TasksCommand::List => {
            for (kind, what) in TaskConfig::describe_kinds() {
                println!("{kind:<20} {what}");
            }
            Ok(0)
        }
        TasksCommand::Show { task, sets, n, seed } => show(&task, &sets, n, seed),
    }
}

fn show(kind: &str, sets: &[String], n: usize, seed: u64) -> Result<u8> {
    let mut table = Table::new();
    table.insert("kind".into(), Value::String(kind.into()));
    for s in sets {
        tinylab_train::overrides::apply(&mut table, s).map_err(anyhow::Error::msg)?;
    }
    let cfg: TaskConfig = Value::Table(table).try_into().with_context(|| {
        format!("task `{kind}`: bad kind or field; kinds: {}", TaskConfig::KINDS.join(", "))
    })?;
    let task = match cfg.build() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: task.{e}");
            return Ok(crate::EXIT_CONFIG);
        }
    };
    let batch = task.generate(&mut tinylab_train::data::rng(seed, 0), n);
    println!("task {} (vocab {}, seq_len {})", task.name(), task.vocab_size(), task.seq_len());
    for b in 0..n {
        let inputs: Vec<String> = batch.input_row(b).iter().map(|&t| task.token_name(t)).collect();
        let targets: Vec<String> = batch
            .target_row(b)
            .iter()
            .map(|&t| if t == IGNORE { ".".to_string() } else { task.token_name(t as u32) })
            .collect();
        let w = inputs.iter().chain(&targets).map(|s| s.chars().count()).max().unwrap_or(1);
        let fmt = |v: &[String]| v.iter().map(|s| format!("{s:>w$}")).collect::<Vec<_>>().join(" ");
        println!("#{b}\ninput : {}\ntarget: {}", fmt(&inputs), fmt(&targets));
    }
    Ok(0)
}
