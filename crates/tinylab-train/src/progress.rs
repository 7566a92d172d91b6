//! Progress display: a bar on a terminal, plain periodic lines otherwise (logs, CI).

use std::io::IsTerminal;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use crate::metrics::MetricRow;

/// Reports training progress to stderr.
pub struct Progress {
    bar: Option<ProgressBar>,
    quiet: bool,
    total: usize,
    every: usize,
    started: Instant,
    last_train: String,
    last_eval: String,
}

impl Progress {
    /// A display for `total` steps, starting at `start`.
    pub fn new(total: usize, start: usize, quiet: bool) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::new(total as u64);
            b.set_style(
                ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            b.set_position(start as u64);
            b
        });
        Self {
            bar,
            quiet,
            total,
            every: (total / 10).max(1),
            started: Instant::now(),
            last_train: String::new(),
            last_eval: String::new(),
        }
    }

    /// After a logged training step.
    pub fn train(&mut self, step: usize, loss: f64, acc: f64) {
        self.last_train =
            if acc.is_nan() { format!("loss {loss:.4}") } else { format!("loss {loss:.4} acc {acc:.3}") };
        if let Some(b) = &self.bar {
            b.set_position(step as u64);
            b.set_message(format!("{} | {}", self.last_train, self.last_eval));
        } else if !self.quiet && (step.is_multiple_of(self.every) || step == self.total) {
            eprintln!(
                "step {step:>6}/{} {:>7.1}s  train {}  {}",
                self.total,
                self.started.elapsed().as_secs_f64(),
                self.last_train,
                self.last_eval
            );
        }
    }

    /// After an evaluation.
    pub fn eval(&mut self, rows: &[MetricRow]) {
        self.last_eval = rows
            .iter()
            .filter(|r| r.metric == "acc" || r.metric == "loss_over_gd")
            .map(|r| match r.metric.as_str() {
                "acc" => format!("{} {:.3}", r.split, r.value),
                m => format!("{}.{m} {:.4}", r.split, r.value),
            })
            .collect::<Vec<_>>()
            .join(" ");
        if let Some(b) = &self.bar {
            b.set_message(format!("{} | {}", self.last_train, self.last_eval));
        }
    }

    /// A one-line notice (e.g. a curriculum stage change), above the bar or on stderr.
    pub fn message(&mut self, text: &str) {
        match &self.bar {
            Some(b) => b.println(text),
            None if !self.quiet => eprintln!("{text}"),
            None => {}
        }
    }

    /// Clears the bar.
    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}
