//! A legend drawn by hand (so it can be placed where it hides the least data).

use std::ops::Range;

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::font::{self, TICK_PX};
use crate::style::INK;

/// How an entry's sample looks.
#[derive(Clone, Copy)]
pub(crate) enum Swatch {
    /// A line, optionally with a marker and a band behind it.
    Line { marker: bool, band: bool },
    /// A filled box (bar plots).
    Box,
}

/// One legend row.
pub(crate) struct Entry {
    pub label: String,
    pub color: RGBColor,
    pub swatch: Swatch,
}

const PAD: i32 = 8;
const SAMPLE_W: i32 = 28;
const ROW_H: i32 = 20;

/// Pixel size (width, height) of the legend box for `entries`.
pub(crate) fn size(entries: &[Entry]) -> (i32, i32) {
    let text_w = entries.iter().map(|e| font::width(&e.label, TICK_PX)).fold(0.0, f64::max);
    (PAD * 3 + SAMPLE_W + text_w.ceil() as i32, PAD * 2 + ROW_H * entries.len() as i32 - 4)
}

/// The top-left corner for a legend of `size` inside the plotting area `(xs, ys)` (pixels)
/// that covers the fewest of `points`, avoiding the `blocked` rectangles (x0, y0, x1, y1).
/// Corners are preferred over edge midpoints on ties.
pub(crate) fn place(
    (xs, ys): (Range<i32>, Range<i32>),
    size: (i32, i32),
    points: &[(i32, i32)],
    blocked: &[(i32, i32, i32, i32)],
) -> (i32, i32) {
    let m = 10;
    let (w, h) = size;
    let (left, right) = (xs.start + m, xs.end - m - w);
    let (top, bottom) = (ys.start + m, ys.end - m - h);
    let (cx, cy) = ((left + right) / 2, (top + bottom) / 2);
    let candidates = [
        (right, top),
        (left, top),
        (right, bottom),
        (left, bottom),
        (cx, top),
        (cx, bottom),
        (right, cy),
        (left, cy),
    ];
    let score = |&(x, y): &(i32, i32)| {
        let inside = |px: i32, py: i32| px >= x - 4 && px <= x + w + 4 && py >= y - 4 && py <= y + h + 4;
        let hits = points.iter().filter(|&&(px, py)| inside(px, py)).count();
        let clash = blocked.iter().filter(|b| b.0 < x + w && b.2 > x && b.1 < y + h && b.3 > y).count();
        hits + 1000 * clash
    };
    // `min_by_key` keeps the first of equal scores, so the order above is the tie-break.
    candidates.iter().copied().min_by_key(score).unwrap_or((right, top))
}

/// Draws the legend with its top-left corner at `at` (pixels of `root`).
pub(crate) fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    at: (i32, i32),
    entries: &[Entry],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    if entries.is_empty() {
        return Ok(());
    }
    let (w, h) = size(entries);
    let (x, y) = at;
    root.draw(&Rectangle::new([(x, y), (x + w, y + h)], WHITE.mix(0.88).filled()))?;
    root.draw(&Rectangle::new([(x, y), (x + w, y + h)], INK.mix(0.35).stroke_width(1)))?;
    let text = font::text(TICK_PX).color(&INK).pos(plotters::style::text_anchor::Pos::new(
        plotters::style::text_anchor::HPos::Left,
        plotters::style::text_anchor::VPos::Center,
    ));
    for (i, e) in entries.iter().enumerate() {
        let cy = y + PAD + ROW_H * i as i32 + (ROW_H - 4) / 2;
        let (sx0, sx1) = (x + PAD, x + PAD + SAMPLE_W);
        match e.swatch {
            Swatch::Line { marker, band } => {
                if band {
                    root.draw(&Rectangle::new([(sx0, cy - 6), (sx1, cy + 6)], e.color.mix(0.2).filled()))?;
                }
                root.draw(&PathElement::new(vec![(sx0, cy), (sx1, cy)], e.color.stroke_width(2)))?;
                if marker {
                    root.draw(&Circle::new(((sx0 + sx1) / 2, cy), 4, e.color.filled()))?;
                }
            }
            Swatch::Box => {
                root.draw(&Rectangle::new([(sx0 + 6, cy - 6), (sx1 - 6, cy + 6)], e.color.filled()))?;
            }
        }
        root.draw(&Text::new(e.label.clone(), (sx1 + PAD, cy), text.clone()))?;
    }
    Ok(())
}

/// Points along the polyline `pts` every ~`step` pixels, so a line crossing the legend's box
/// counts even if none of its data points fall inside it.
pub(crate) fn densify(pts: &[(i32, i32)], step: f64, out: &mut Vec<(i32, i32)>) {
    out.extend(pts.first().copied());
    for w in pts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let len = (((b.0 - a.0) as f64).powi(2) + ((b.1 - a.1) as f64).powi(2)).sqrt();
        let n = (len / step).ceil().clamp(1.0, 10_000.0) as i32;
        for k in 1..=n {
            let t = k as f64 / n as f64;
            out.push((
                a.0 + ((b.0 - a.0) as f64 * t).round() as i32,
                a.1 + ((b.1 - a.1) as f64 * t).round() as i32,
            ));
        }
    }
}
