//! Layout and drawing of one heatmap panel: title, cells, thinned row/column labels, axis
//! labels and a colour bar with ticks.

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::FontTransform;

use crate::font::{self, LABEL_PX};
use crate::heatmap::Heatmap;
use crate::output::Raster;
use crate::style::{fmt_num, nice_ticks, INK};

/// Tick-label size in heatmaps (a little smaller than in charts: labels are dense).
const LABEL_TICK_PX: f64 = 14.0;
/// At most this many row (or column) labels are shown.
const MAX_LABELS: usize = 40;
/// Largest cell edge in pixels.
const MAX_CELL: f64 = 48.0;
/// Matrices with more cells than this (or tiny cells) are drawn as one raster image.
const RECT_LIMIT: usize = 128 * 128;
const PAD: i32 = 10;
const BAR_GAP: i32 = 14;
const BAR_W: i32 = 16;

/// A laid-out heatmap: every size in pixels, relative to the panel's top-left corner.
pub(crate) struct Panel<'a> {
    h: &'a Heatmap,
    range: (f64, f64),
    title_px: f64,
    /// Grid origin and size.
    gx: i32,
    gy: i32,
    gw: i32,
    gh: i32,
    /// Colour-bar height, and the bar's tick values.
    bar_h: i32,
    bar_ticks: Vec<f64>,
    row_stride: usize,
    col_stride: usize,
    /// Column labels written vertically.
    col_rot: bool,
    width: i32,
    height: i32,
}

/// The smallest of 1, 2, 5, 10, 20, 50, … that is at least `min`.
fn nice_stride(min: f64) -> usize {
    if min.is_nan() || min > 1e9 {
        return 1_000_000_000; // NaN or absurd: effectively "label only the first"
    }
    let mut base = 1usize;
    loop {
        for m in [1, 2, 5] {
            if (m * base) as f64 >= min {
                return m * base;
            }
        }
        base *= 10;
    }
}

fn label(labels: &[String], i: usize) -> String {
    labels.get(i).cloned().unwrap_or_else(|| i.to_string())
}

impl<'a> Panel<'a> {
    /// Cell width and height for a `rows × cols` matrix whose longer side should be about
    /// `target` pixels: whole pixels from 1 to 48 when possible (subsampling, down to a
    /// quarter pixel or a 4096-pixel grid, beyond `target` cells), stretched along a side that would otherwise be
    /// under 120 pixels (at most 8:1).
    pub(crate) fn cell_size(rows: usize, cols: usize, target: f64) -> (f64, f64) {
        let c = target / rows.max(cols) as f64;
        // Whole pixels when possible; otherwise subsample, but keep the grid under 4096 px.
        let c =
            if c >= 1.0 { c.floor().min(MAX_CELL) } else { c.max(0.25).min(4096.0 / rows.max(cols) as f64) };
        let stretch = |n: usize| {
            let want = 120.0 / n as f64;
            if n as f64 * c < 120.0 {
                let s = want.min(MAX_CELL).min(8.0 * c);
                if s >= 1.0 {
                    s.floor()
                } else {
                    s
                }
            } else {
                c
            }
        };
        (stretch(cols).max(c), stretch(rows).max(c))
    }

    /// Lays out `h` (already validated) with cells of `(cw, ch)` pixels and a title of
    /// `title_px`.
    pub(crate) fn new(h: &'a Heatmap, (cw, ch): (f64, f64), title_px: f64) -> Panel<'a> {
        let (rows, cols) = (h.values.len(), h.values[0].len());
        let range = h.colormap.range(h.values.iter().flatten());
        let (gw, gh) = ((cols as f64 * cw).round() as i32, (rows as f64 * ch).round() as i32);
        let text_h = font::measure("0", LABEL_TICK_PX).1;

        let row_stride = nice_stride(((text_h + 2.0) / ch).max(rows as f64 / MAX_LABELS as f64));
        let row_w =
            (0..rows).step_by(row_stride).map(|i| font::width(&label(&h.row_labels, i), LABEL_TICK_PX));
        let row_w = row_w.fold(0.0, f64::max).ceil() as i32;

        let col_w = |stride: usize| {
            (0..cols)
                .step_by(stride)
                .map(|j| font::width(&label(&h.col_labels, j), LABEL_TICK_PX))
                .fold(0.0, f64::max)
        };
        let vert = nice_stride(((text_h + 2.0) / cw).max(cols as f64 / MAX_LABELS as f64));
        let horiz = nice_stride(((col_w(vert) + 8.0) / cw).max(cols as f64 / MAX_LABELS as f64));
        // Prefer upright labels: for the default index labels whenever that still shows at
        // least 6 of them; for named labels (tokens) only when nothing is lost.
        let shown = |stride: usize| cols.div_ceil(stride);
        let col_rot = if h.col_labels.is_empty() { shown(horiz) < shown(vert).min(6) } else { horiz > vert };
        let col_stride = if col_rot { vert } else { horiz };
        let col_h = if col_rot { col_w(col_stride).ceil() as i32 } else { text_h.ceil() as i32 };

        let label_h = font::measure("Ag", LABEL_PX).1.ceil() as i32;
        let title_h =
            if h.title.is_empty() { 0 } else { font::measure(&h.title, title_px).1.ceil() as i32 + 10 };
        let y_lab = if h.y_label.is_empty() { 0 } else { label_h + 8 };
        let x_lab = if h.x_label.is_empty() { 0 } else { label_h + 8 };

        let bar_h = gh.max(100);
        let bar_ticks = nice_ticks(range.0, range.1, (bar_h / 45).clamp(2, 6) as usize);
        let tick_w = bar_ticks.iter().map(|v| font::width(&fmt_num(*v), LABEL_TICK_PX)).fold(0.0, f64::max);

        let gx = PAD + y_lab + row_w + 6;
        let gy = PAD + title_h;
        let mut width = gx + gw + BAR_GAP + BAR_W + 6 + tick_w.ceil() as i32 + PAD;
        let titles = font::width(&h.title, title_px).max(font::width(&h.x_label, LABEL_PX));
        width = width.max(titles.ceil() as i32 + 2 * PAD);
        let height = gy + gh.max(bar_h) + 6 + col_h + x_lab + PAD;
        Panel {
            h,
            range,
            title_px,
            gx,
            gy,
            gw,
            gh,
            bar_h,
            bar_ticks,
            row_stride,
            col_stride,
            col_rot,
            width,
            height,
        }
    }

    /// The panel's size in pixels (width, height).
    pub(crate) fn size(&self) -> (i32, i32) {
        (self.width, self.height)
    }

    /// Draws the panel with its top-left corner at `(ox, oy)` on `root`.
    pub(crate) fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        (ox, oy): (i32, i32),
        rasters: &mut Vec<Raster>,
    ) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let h = self.h;
        let (rows, cols) = (h.values.len(), h.values[0].len());
        let (gx, gy) = (ox + self.gx, oy + self.gy);
        let ink = |px: f64, hp, vp| font::text(px).color(&INK).pos(Pos::new(hp, vp));

        if !h.title.is_empty() {
            // Centred over the grid, but kept inside the panel.
            let tw = font::width(&h.title, self.title_px) as i32;
            let (min, max) = (ox + PAD + tw / 2, ox + self.width - PAD - tw / 2);
            let cx = (gx + self.gw / 2).clamp(min, max.max(min));
            root.draw(&Text::new(
                h.title.clone(),
                (cx, oy + PAD),
                ink(self.title_px, HPos::Center, VPos::Top),
            ))?;
        }

        // Cells.
        let cell_x = |j: usize| gx + (j as i64 * self.gw as i64 / cols as i64) as i32;
        let cell_y = |i: usize| gy + (i as i64 * self.gh as i64 / rows as i64) as i32;
        if rows * cols > RECT_LIMIT || self.gw < 3 * cols as i32 || self.gh < 3 * rows as i32 {
            let mut rgb = Vec::with_capacity(rows * cols * 3);
            for v in h.values.iter().flatten() {
                let c = h.colormap.color(*v, self.range);
                rgb.extend([c.0, c.1, c.2]);
            }
            rasters.push(Raster { x: gx, y: gy, w: self.gw as u32, h: self.gh as u32, cols, rows, rgb });
        } else {
            for (i, row) in h.values.iter().enumerate() {
                for (j, v) in row.iter().enumerate() {
                    let style = h.colormap.color(*v, self.range).filled();
                    root.draw(&Rectangle::new(
                        [(cell_x(j), cell_y(i)), (cell_x(j + 1), cell_y(i + 1))],
                        style,
                    ))?;
                }
            }
        }
        let frame = [(gx - 1, gy - 1), (gx + self.gw, gy + self.gh)];
        root.draw(&Rectangle::new(frame, INK.mix(0.6).stroke_width(1)))?;

        // Row and column labels with small ticks.
        for i in (0..rows).step_by(self.row_stride) {
            let y = (cell_y(i) + cell_y(i + 1)) / 2;
            root.draw(&PathElement::new(vec![(gx - 4, y), (gx - 1, y)], INK.stroke_width(1)))?;
            let style = ink(LABEL_TICK_PX, HPos::Right, VPos::Center);
            root.draw(&Text::new(label(&h.row_labels, i), (gx - 6, y), style))?;
        }
        let below = gy + self.gh + 6;
        for j in (0..cols).step_by(self.col_stride) {
            let x = (cell_x(j) + cell_x(j + 1)) / 2;
            root.draw(&PathElement::new(
                vec![(x, gy + self.gh), (x, gy + self.gh + 3)],
                INK.stroke_width(1),
            ))?;
            let text = label(&h.col_labels, j);
            if self.col_rot {
                let style = ink(LABEL_TICK_PX, HPos::Right, VPos::Center).transform(FontTransform::Rotate270);
                root.draw(&Text::new(text, (x, below), style))?;
            } else {
                root.draw(&Text::new(text, (x, below), ink(LABEL_TICK_PX, HPos::Center, VPos::Top)))?;
            }
        }

        // Axis labels.
        if !h.x_label.is_empty() {
            let y = oy + self.height - PAD;
            let x = (gx + self.gw / 2).max(ox + PAD + font::width(&h.x_label, LABEL_PX) as i32 / 2);
            root.draw(&Text::new(h.x_label.clone(), (x, y), ink(LABEL_PX, HPos::Center, VPos::Bottom)))?;
        }
        if !h.y_label.is_empty() {
            let style = ink(LABEL_PX, HPos::Center, VPos::Top).transform(FontTransform::Rotate270);
            root.draw(&Text::new(h.y_label.clone(), (ox + PAD, gy + self.gh / 2), style))?;
        }
        self.colour_bar(root, (gx + self.gw + BAR_GAP, gy))
    }

    /// The colour bar with its top-left corner at `(bx, by)`: a vertical gradient from the
    /// range's top (max) to bottom (min), framed, with tick marks and values on the right.
    fn colour_bar<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        (bx, by): (i32, i32),
    ) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let (lo, hi) = self.range;
        let bh = self.bar_h;
        for py in 0..bh {
            let v = hi - (py as f64 + 0.5) / bh as f64 * (hi - lo);
            let c = self.h.colormap.color(v, self.range);
            root.draw(&Rectangle::new([(bx, by + py), (bx + BAR_W, by + py + 1)], c.filled()))?;
        }
        root.draw(&Rectangle::new([(bx - 1, by - 1), (bx + BAR_W, by + bh)], INK.mix(0.6).stroke_width(1)))?;
        let style = font::text(LABEL_TICK_PX).color(&INK).pos(Pos::new(HPos::Left, VPos::Center));
        for &t in &self.bar_ticks {
            let y = by + ((hi - t) / (hi - lo) * bh as f64).round() as i32;
            let y = y.clamp(by, by + bh - 1);
            root.draw(&PathElement::new(vec![(bx + BAR_W, y), (bx + BAR_W + 4, y)], INK.stroke_width(1)))?;
            root.draw(&Text::new(fmt_num(t), (bx + BAR_W + 6, y), style.clone()))?;
        }
        Ok(())
    }
}
