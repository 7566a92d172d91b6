//! Line plots (learning curves, accuracy against length, spectra): the public types, input
//! validation and axis ranges. The drawing itself is in `line_draw.rs`.

use std::path::Path;

use anyhow::{bail, Result};

use crate::output;
use crate::style::{padded, padded_log};

/// One curve of a [`LinePlot`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// Legend text (an empty label keeps the series out of the legend).
    pub label: String,
    /// X values, one per point (e.g. training steps). Need not be sorted, but the line joins
    /// points in the given order.
    pub x: Vec<f64>,
    /// Y values, same length as `x`. A non-finite value (or a non-positive one on a log axis)
    /// is skipped and breaks the line there.
    pub y: Vec<f64>,
    /// Optional shaded band `(lower, upper)` around the line, each the same length as `x`
    /// (e.g. mean ± std over seeds from [`mean_band`](crate::mean_band)).
    pub band: Option<(Vec<f64>, Vec<f64>)>,
}

/// A line chart: one or more [`Series`] with optional bands, log axes and labelled vertical
/// markers. Rendered by [`line_plot`] at 960 × 600 pixels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LinePlot {
    /// Title above the plot.
    pub title: String,
    /// X-axis label.
    pub x_label: String,
    /// Y-axis label.
    pub y_label: String,
    /// Logarithmic x axis (points with x ≤ 0 are skipped).
    pub x_log: bool,
    /// Logarithmic y axis (points with y ≤ 0 are skipped).
    pub y_log: bool,
    /// The curves, drawn in order with a colour each; at least one is required.
    pub series: Vec<Series>,
    /// Vertical dashed lines `(x, label)`, e.g. curriculum stage boundaries; the label is
    /// written at the top of the line (empty for none).
    pub vlines: Vec<(f64, String)>,
}

/// Draws `p` to `path` (`.png` or `.svg`, chosen by the extension; written atomically).
///
/// Each series is a 2-pixel line in its own colour over its band (if any) shaded in the same
/// colour; a series with at most 12 plottable points also gets a marker at each point. The
/// legend (series with non-empty labels) goes in whichever corner hides the least data.
///
/// Errors (never panics) if the extension is not `.png`/`.svg`, if there are no series, a
/// series is empty or has mismatched lengths, or nothing is plottable (everything non-finite,
/// or non-positive on a log axis); and on I/O failure.
pub fn line_plot(p: &LinePlot, path: &Path) -> Result<()> {
    output::Format::from_path(path)?;
    let ranges = validate(p)?;
    output::save(&crate::line_draw::LineFigure { p, ranges }, path)
}

/// Plots singular values (or any spectrum) against their 1-based index, one line per
/// `(name, values)` matrix, to `path` (`.png` or `.svg`). `log_y` puts the values on a log
/// axis (zeros are then skipped). A thin wrapper over [`line_plot`]; same errors.
pub fn spectrum_plot(title: &str, spectra: &[(String, Vec<f64>)], log_y: bool, path: &Path) -> Result<()> {
    let series = spectra
        .iter()
        .map(|(name, values)| Series {
            label: name.clone(),
            x: (1..=values.len()).map(|i| i as f64).collect(),
            y: values.clone(),
            band: None,
        })
        .collect();
    let p = LinePlot {
        title: title.to_string(),
        x_label: "index".into(),
        y_label: "singular value".into(),
        x_log: false,
        y_log: log_y,
        series,
        vlines: Vec::new(),
    };
    line_plot(&p, path)
}

/// Axis ranges `(x0, x1, y0, y1)` in data units (positive where the axis is logarithmic).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ranges {
    pub x: (f64, f64),
    pub y: (f64, f64),
}

/// Whether `v` can be drawn on an axis (finite, and positive if the axis is logarithmic).
pub(crate) fn ok(v: f64, log: bool) -> bool {
    v.is_finite() && (!log || v > 0.0)
}

/// Checks `p` and computes its axis ranges.
fn validate(p: &LinePlot) -> Result<Ranges> {
    if p.series.is_empty() {
        bail!("line plot {:?} has no series to draw", p.title);
    }
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for s in &p.series {
        if s.x.is_empty() {
            bail!("series {:?} of line plot {:?} is empty", s.label, p.title);
        }
        if s.x.len() != s.y.len() {
            bail!("series {:?} has {} x values but {} y values", s.label, s.x.len(), s.y.len());
        }
        if let Some((lo, hi)) = &s.band {
            if lo.len() != s.x.len() || hi.len() != s.x.len() {
                bail!(
                    "series {:?}: band has {}/{} lower/upper values for {} points",
                    s.label,
                    lo.len(),
                    hi.len(),
                    s.x.len()
                );
            }
        }
        for i in 0..s.x.len() {
            if !ok(s.x[i], p.x_log) {
                continue;
            }
            let mut any = false;
            let band = s.band.as_ref().map(|(lo, hi)| [lo[i], hi[i]]).unwrap_or([f64::NAN; 2]);
            for v in std::iter::once(s.y[i]).chain(band) {
                if ok(v, p.y_log) {
                    ys.push(v);
                    any = true;
                }
            }
            if any {
                xs.push(s.x[i]);
            }
        }
    }
    if xs.is_empty() {
        let log = if p.x_log || p.y_log { " (values must be positive on a log axis)" } else { "" };
        bail!("line plot {:?} has no plottable points: all values are non-finite{log}", p.title);
    }
    xs.extend(p.vlines.iter().map(|v| v.0).filter(|&x| ok(x, p.x_log)));
    let min_max =
        |v: &[f64]| v.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    let ((x0, x1), (y0, y1)) = (min_max(&xs), min_max(&ys));
    Ok(Ranges {
        x: if p.x_log { padded_log(x0, x1, 0.03) } else { padded(x0, x1, 0.02) },
        y: if p.y_log { padded_log(y0, y1, 0.05) } else { padded(y0, y1, 0.05) },
    })
}

#[cfg(test)]
#[path = "line_tests.rs"]
mod tests;
