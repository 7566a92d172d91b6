//! One coordinate type for linear and logarithmic axes with our own tick choice (see
//! [`ticks`](crate::style::ticks)), so every chart has a single concrete type.

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint, Ranged};

use crate::style::ticks;

/// A linear or log10 axis over `[lo, hi]` with precomputed labelled (`bold`) and grid-only
/// (`light`) tick values.
#[derive(Debug, Clone)]
pub(crate) struct Axis {
    lo: f64,
    hi: f64,
    log: bool,
    bold: Vec<f64>,
    light: Vec<f64>,
}

impl Axis {
    /// An axis over `[lo, hi]` (both > 0 if `log`) with about `n` labelled ticks.
    pub(crate) fn new(lo: f64, hi: f64, log: bool, n: usize) -> Axis {
        let (bold, light) = ticks(lo, hi, log, n);
        Axis { lo, hi, log, bold, light }
    }

    /// A linear axis over `[lo, hi]` with exactly the labelled ticks `ticks` (e.g. the
    /// category positions of a bar chart).
    pub(crate) fn with_ticks(lo: f64, hi: f64, ticks: Vec<f64>) -> Axis {
        Axis { lo, hi, log: false, bold: ticks, light: Vec::new() }
    }

    /// The labelled tick values.
    pub(crate) fn labelled(&self) -> &[f64] {
        &self.bold
    }

    fn t(&self, v: f64) -> f64 {
        if self.log {
            v.log10()
        } else {
            v
        }
    }
}

impl Ranged for Axis {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;

    fn map(&self, v: &f64, limit: (i32, i32)) -> i32 {
        let (a, b) = (self.t(self.lo), self.t(self.hi));
        let f = (self.t(*v) - a) / (b - a);
        let px = limit.0 as f64 + f * (limit.1 - limit.0) as f64;
        if px.is_nan() {
            limit.0
        } else {
            px.round().clamp(-1e7, 1e7) as i32
        }
    }

    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            self.light.clone()
        } else {
            self.bold.clone()
        }
    }

    fn range(&self) -> Range<f64> {
        self.lo..self.hi
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_linear_and_log() {
        let lin = Axis::new(0.0, 10.0, false, 5);
        assert_eq!(lin.map(&5.0, (0, 100)), 50);
        assert_eq!(lin.labelled(), [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        let log = Axis::new(1.0, 100.0, true, 5);
        assert_eq!(log.map(&10.0, (100, 0)), 50);
        assert_eq!(log.map(&0.0, (0, 100)), -10_000_000); // log10(0) = -inf: clamped, no panic
        assert_eq!(log.map(&-1.0, (0, 100)), 0); // NaN
    }
}
