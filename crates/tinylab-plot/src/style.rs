//! Shared look: the series palette, number formatting for tick labels, and "nice" ticks.

use plotters::style::RGBColor;

/// A colour-blind-friendly qualitative palette (Okabe–Ito, then Tableau for more series).
const PALETTE: [RGBColor; 10] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(230, 159, 0),   // orange
    RGBColor(86, 180, 233),  // sky blue
    RGBColor(0, 0, 0),       // black
    RGBColor(140, 86, 75),   // brown
    RGBColor(127, 127, 127), // grey
    RGBColor(188, 189, 34),  // olive
];

/// The colour of series number `i` (cycles after ten).
pub(crate) fn series_color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

/// Light grey for grid lines.
pub(crate) const GRID: RGBColor = RGBColor(225, 225, 225);
/// Dark grey for axes, frames and annotations.
pub(crate) const INK: RGBColor = RGBColor(60, 60, 60);

/// Formats a tick value compactly: up to four significant digits, no trailing zeros,
/// scientific notation only for very large or very small magnitudes.
pub(crate) fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        return format!("{v}");
    }
    let a = v.abs();
    if a == 0.0 {
        return "0".into();
    }
    if !(1e-3..1e6).contains(&a) {
        let s = format!("{v:.2e}");
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let mant = trim_zeros(mant);
        return format!("{mant}e{exp}");
    }
    let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
    let s = format!("{v:.decimals$}");
    let s = trim_zeros(&s);
    if s == "-0" {
        "0".into()
    } else {
        s
    }
}

fn trim_zeros(s: &str) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s.to_string()
    }
}

/// About `n` (between 0.75·n and 1.33·n) evenly spaced "nice" values (steps of 1, 2 or 5 × 10^k) covering `[lo, hi]`.
pub(crate) fn nice_ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if !(lo.is_finite() && hi.is_finite()) || hi <= lo || n == 0 {
        return vec![lo];
    }
    let raw = (hi - lo) / n as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw * 0.75).unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    if last < first || last - first > 100 {
        return vec![lo, hi]; // precision trouble (e.g. a range near the f64 limits)
    }
    (first..=last).map(|k| k as f64 * step).map(|v| if v.abs() < step * 1e-9 { 0.0 } else { v }).collect()
}

/// Tick values for an axis over `[lo, hi]`: `(labelled, unlabelled)`. Linear axes get about
/// `n` nice labelled ticks and no minor ones. Log axes (`lo`, `hi` > 0) label every integer
/// multiple of a power of ten when the range spans under a decade, 1-2-5 multiples up to
/// 2.5 decades, every decade (or every k-th, for about `n` labels) beyond; the other integer
/// multiples become faint minor grid lines while there are at most 8 decades.
pub(crate) fn ticks(lo: f64, hi: f64, log: bool, n: usize) -> (Vec<f64>, Vec<f64>) {
    if !log {
        return (nice_ticks(lo, hi, n), Vec::new());
    }
    let span = (hi / lo).log10();
    let (k0, k1) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let every = (span.ceil() as usize).div_ceil(n.max(1)).max(1);
    let (mut bold, mut light) = (Vec::new(), Vec::new());
    let inside = |v: f64| v >= lo * (1.0 - 1e-9) && v <= hi * (1.0 + 1e-9);
    for k in k0..=k1 {
        let d = 10f64.powi(k);
        for m in 1..10 {
            // Build from the decimal literal so 0.2 prints as "0.2", not "0.20000000000000004".
            let v: f64 = format!("{m}e{k}").parse().unwrap_or(m as f64 * d);
            if !inside(v) {
                continue;
            }
            let labelled = if m == 1 {
                (k - k0).rem_euclid(every as i32) == 0
            } else {
                span < 1.0 || (span <= 2.5 && (m == 2 || m == 5))
            };
            if labelled {
                bold.push(v);
            } else if span <= 8.0 {
                light.push(v);
            }
        }
    }
    (bold, light)
}

/// A log axis range covering `[lo, hi]` (both > 0) with a `pad` fraction of the log span
/// either side; a degenerate range is widened to a factor of two each way.
pub(crate) fn padded_log(lo: f64, hi: f64, pad: f64) -> (f64, f64) {
    if hi > lo * (1.0 + 1e-9) {
        let f = (hi / lo).powf(pad);
        (lo / f, hi * f)
    } else {
        (lo / 2.0, hi * 2.0)
    }
}

/// A linear axis range covering `[lo, hi]` with a `pad` fraction either side; degenerate
/// ranges are widened so the axis never collapses.
pub(crate) fn padded(lo: f64, hi: f64, pad: f64) -> (f64, f64) {
    if hi > lo {
        let d = (hi - lo) * pad;
        (lo - d, hi + d)
    } else {
        let d = if lo == 0.0 { 1.0 } else { lo.abs() * 0.1 };
        (lo - d, hi + d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_format_compactly() {
        assert_eq!(fmt_num(0.0), "0");
        assert_eq!(fmt_num(0.5), "0.5");
        assert_eq!(fmt_num(0.30000000000000004), "0.3");
        assert_eq!(fmt_num(20000.0), "20000");
        assert_eq!(fmt_num(1e-4), "1e-4");
        assert_eq!(fmt_num(2.5e7), "2.5e7");
        assert_eq!(fmt_num(-1.25), "-1.25");
    }

    #[test]
    fn ticks_are_nice() {
        assert_eq!(nice_ticks(-1.0, 1.0, 4), vec![-1.0, -0.5, 0.0, 0.5, 1.0]);
        let labels: Vec<String> = nice_ticks(0.0, 1.0, 5).into_iter().map(fmt_num).collect();
        assert_eq!(labels, ["0", "0.2", "0.4", "0.6", "0.8", "1"]);
        let labels = |lo, hi| ticks(lo, hi, true, 8).0.into_iter().map(fmt_num).collect::<Vec<_>>();
        assert_eq!(labels(0.01, 1.0), ["0.01", "0.02", "0.05", "0.1", "0.2", "0.5", "1"]);
        assert_eq!(labels(0.45, 0.95), ["0.5", "0.6", "0.7", "0.8", "0.9"]);
        assert_eq!(labels(50.0, 3000.0), ["50", "100", "200", "500", "1000", "2000"]);
        let (bold, light) = ticks(1.0, 1e6, true, 8);
        assert_eq!((bold.len(), light.len()), (7, 6 * 8));
        assert_eq!(ticks(1.0, 1e20, true, 8).0.len(), 7); // every 3rd decade
        let (a, b) = padded_log(1.0, 100.0, 0.05);
        assert!((a.log10() + 0.1).abs() < 1e-12 && (b.log10() - 2.1).abs() < 1e-12);
        assert_eq!(padded_log(3.0, 3.0, 0.05), (1.5, 6.0));
    }
}
