//! Mean ± standard deviation across runs (e.g. seeds), for the shaded bands of a line plot.

use std::collections::HashMap;

/// Aggregates several runs of `(x, y)` points into a mean curve with a ±1 std band.
///
/// Returns `(x, mean, mean − std, mean + std)`, four vectors of equal length. `x` holds the
/// values present in **every** run (compared exactly, so use the same step grid), sorted
/// ascending; for each, the runs' `y` at that `x` are averaged and their **population**
/// standard deviation (divide by the number of runs) is taken, so with a single run the band
/// collapses onto the mean. If a run has the same `x` more than once, its first `y` counts.
/// Non-finite `y` values propagate (a NaN mean leaves a gap in the plotted line). No runs, or
/// no shared `x`, give four empty vectors.
pub fn mean_band(runs: &[Vec<(f64, f64)>]) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let empty = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let Some(first) = runs.first() else {
        return empty;
    };
    // x → y for each run, keyed by the bit pattern (with -0.0 folded into 0.0).
    let key = |x: f64| if x == 0.0 { 0u64 } else { x.to_bits() };
    let maps: Vec<HashMap<u64, f64>> = runs
        .iter()
        .map(|run| {
            let mut m = HashMap::with_capacity(run.len());
            for &(x, y) in run {
                m.entry(key(x)).or_insert(y);
            }
            m
        })
        .collect();
    let mut xs: Vec<f64> = first.iter().map(|p| p.0).filter(|x| !x.is_nan()).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup_by(|a, b| key(*a) == key(*b));
    xs.retain(|&x| maps.iter().all(|m| m.contains_key(&key(x))));

    let n = runs.len() as f64;
    let (mut mean, mut lo, mut hi) = (Vec::new(), Vec::new(), Vec::new());
    for &x in &xs {
        let ys = maps.iter().map(|m| m[&key(x)]);
        let mu = ys.clone().sum::<f64>() / n;
        let var = ys.map(|y| (y - mu) * (y - mu)).sum::<f64>() / n;
        let sd = var.sqrt();
        mean.push(mu);
        lo.push(mu - sd);
        hi.push(mu + sd);
    }
    (xs, mean, lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_example() {
        // x = 2 is missing from run b, x = 4 only in run b: both dropped.
        let a = vec![(0.0, 1.0), (1.0, 2.0), (2.0, 5.0), (3.0, 0.0)];
        let b = vec![(3.0, 4.0), (0.0, 3.0), (1.0, 2.0), (4.0, 9.0)];
        let (x, m, lo, hi) = mean_band(&[a, b]);
        assert_eq!(x, [0.0, 1.0, 3.0]);
        assert_eq!(m, [2.0, 2.0, 2.0]);
        // population std: |1-3|/2 = 1, 0, |0-4|/2 = 2
        assert_eq!(lo, [1.0, 2.0, 0.0]);
        assert_eq!(hi, [3.0, 2.0, 4.0]);
    }

    #[test]
    fn three_runs_population_std() {
        let runs = vec![vec![(10.0, 1.0)], vec![(10.0, 2.0)], vec![(10.0, 6.0)]];
        let (x, m, lo, hi) = mean_band(&runs);
        assert_eq!(x, [10.0]);
        assert_eq!(m, [3.0]);
        let sd = (14.0f64 / 3.0).sqrt(); // ((1-3)² + (2-3)² + (6-3)²) / 3
        assert!((hi[0] - 3.0 - sd).abs() < 1e-12 && (3.0 - lo[0] - sd).abs() < 1e-12);
    }

    #[test]
    fn single_run_collapses_and_empty_inputs() {
        let (x, m, lo, hi) = mean_band(&[vec![(1.0, 0.5), (2.0, 0.25)]]);
        assert_eq!((x.as_slice(), m.as_slice()), (&[1.0, 2.0][..], &[0.5, 0.25][..]));
        assert_eq!((lo, hi), (m.clone(), m));
        assert!(mean_band(&[]).0.is_empty());
        assert!(mean_band(&[vec![(1.0, 1.0)], vec![(2.0, 1.0)]]).0.is_empty());
    }
}
