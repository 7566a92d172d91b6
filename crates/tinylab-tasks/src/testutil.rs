//! Helpers shared by the tasks' unit tests.

use rand::SeedableRng;

use crate::{Batch, Task, TaskRng, IGNORE};

/// A batch of `batch_size` sequences from a fresh generator seeded with `seed`.
pub fn batch(task: &dyn Task, seed: u64, batch_size: usize) -> Batch {
    task.generate(&mut TaskRng::seed_from_u64(seed), batch_size)
}

/// Sequence `b` as aligned `input:` / `target:` lines of token names (`.` for [`IGNORE`]).
pub fn render(task: &dyn Task, batch: &Batch, b: usize) -> String {
    let name = |t: i32| if t == IGNORE { ".".to_string() } else { task.token_name(t as u32) };
    let cells: Vec<(String, String)> = batch
        .input_row(b)
        .iter()
        .zip(batch.target_row(b))
        .map(|(&i, &t)| (task.token_name(i), name(t)))
        .collect();
    let width = |(i, t): &(String, String)| i.len().max(t.len());
    let line = |pick: fn(&(String, String)) -> &String| {
        cells.iter().map(|c| format!("{:<w$}", pick(c), w = width(c))).collect::<Vec<_>>().join(" ")
    };
    format!("input:  {}\ntarget: {}", line(|c| &c.0), line(|c| &c.1))
}

/// Shape, vocabulary range, token names and seed determinism; unless the configuration is
/// `degenerate` (one possible sequence, e.g. a single data token), a different seed must give
/// a different batch.
pub fn check_common(task: &dyn Task, degenerate: bool) {
    let t = task.seq_len();
    let b = batch(task, 7, 16);
    assert_eq!((b.batch_size, b.seq_len), (16, t));
    assert_eq!((b.inputs.len(), b.targets.len()), (16 * t, 16 * t));
    let v = task.vocab_size();
    assert!(b.inputs.iter().all(|&x| (x as usize) < v), "input token >= vocab_size {v}");
    assert!(b.targets.iter().all(|&y| y == IGNORE || (0..v as i32).contains(&y)));
    assert_eq!(batch(task, 7, 16), b, "same seed must give the same batch");
    if !degenerate {
        assert_ne!(batch(task, 8, 16), b, "different seeds must give different batches");
    }
    assert_eq!(batch(task, 7, 0).inputs.len(), 0);
    let mut names: Vec<String> = (0..v as u32).map(|x| task.token_name(x)).collect();
    for name in &names {
        assert!(!name.is_empty() && !name.contains(' ') && !name.starts_with('?'), "{name}");
    }
    names.sort();
    names.dedup();
    assert_eq!(names.len(), v, "token names must be distinct");
    assert!(task.token_name(v as u32).starts_with('?'));
}
