//! Heatmaps (weight matrices, attention patterns) and grids of them: the public API and
//! input validation. Layout and drawing of one panel are in `heatmap_draw.rs`.

use std::path::Path;

use anyhow::{bail, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::colormap::Colormap;
use crate::font::{self, LABEL_PX, TITLE_PX};
use crate::heatmap_draw::Panel;
use crate::output::{self, Figure, Raster};
use crate::style::INK;

/// A matrix drawn as coloured cells with a colour bar, e.g. a weight matrix (diverging
/// colours) or an attention pattern (sequential colours).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Heatmap {
    /// Title above the matrix.
    pub title: String,
    /// The matrix as rows (row 0 drawn at the top); every row must have the same, non-zero
    /// length. Non-finite values are drawn grey.
    pub values: Vec<Vec<f64>>,
    /// One label per row (e.g. query positions or tokens), or empty for `0, 1, 2, …`.
    /// Thinned out (every k-th shown) when they would not fit or there are more than 40.
    pub row_labels: Vec<String>,
    /// One label per column (e.g. key positions), or empty for `0, 1, 2, …`; thinned like
    /// `row_labels`, and written vertically when too wide to fit side by side.
    pub col_labels: Vec<String>,
    /// Label under the column labels (e.g. "key position").
    pub x_label: String,
    /// Label left of the row labels (e.g. "query position").
    pub y_label: String,
    /// How values map to colours (see [`Colormap`]).
    pub colormap: Colormap,
}

/// Draws `h` to `path` (`.png` or `.svg`, chosen by the extension; written atomically).
///
/// Cells are square where possible, up to 48 pixels each and scaled so the matrix is about
/// 640 pixels on its longer side (a 512 × 512 matrix gets 1-pixel cells; larger ones are
/// subsampled, at most 4 cells per pixel and never wider than 4096 pixels; a side shorter
/// than 120 pixels is stretched, up to 8:1). Big matrices are drawn as one image (embedded
/// as a PNG in SVG output) rather than one rectangle per cell. The colour bar on the right shows the value
/// range with ticks. Errors (never panics) on an unsupported extension, an empty or ragged
/// matrix, label counts that do not match the matrix, or I/O failure.
pub fn heatmap(h: &Heatmap, path: &Path) -> Result<()> {
    output::Format::from_path(path)?;
    validate(h)?;
    font::ensure()?;
    let panel = Panel::new(h, Panel::cell_size(h.values.len(), h.values[0].len(), 640.0), TITLE_PX);
    output::save(&Single(panel), path)
}

/// Draws `panels` as a grid with `ncols` columns (e.g. one row per layer, one column per
/// head) under a shared `title`, to `path` (`.png` or `.svg`). Each panel keeps its own
/// title, labels and colour bar, i.e. its own colour scale (a [`Colormap::Sequential`]
/// attention map is on the fixed 0–1 scale anyway, so those compare directly). All panels
/// use the same cell size, so equal-shaped matrices line up. Errors on an unsupported
/// extension, no panels, `ncols == 0`, or any invalid panel (see [`heatmap`]).
pub fn small_multiples(title: &str, panels: &[Heatmap], ncols: usize, path: &Path) -> Result<()> {
    output::Format::from_path(path)?;
    if panels.is_empty() {
        bail!("small multiples {title:?}: no panels to draw");
    }
    if ncols == 0 {
        bail!("small multiples {title:?}: ncols must be at least 1");
    }
    for (i, p) in panels.iter().enumerate() {
        validate(p).map_err(|e| e.context(format!("small multiples {title:?}, panel {i}")))?;
    }
    font::ensure()?;
    let ncols = ncols.min(panels.len());
    let rows = panels.iter().map(|p| p.values.len()).max().unwrap_or(1);
    let cols = panels.iter().map(|p| p.values[0].len()).max().unwrap_or(1);
    let target = (1600.0 / ncols as f64).clamp(160.0, 480.0);
    let cell = Panel::cell_size(rows, cols, target);
    let panels: Vec<Panel> = panels.iter().map(|p| Panel::new(p, cell, LABEL_PX)).collect();
    output::save(&Grid { title, panels, ncols }, path)
}

fn validate(h: &Heatmap) -> Result<()> {
    let Some(first) = h.values.first() else {
        bail!("heatmap {:?} has no rows", h.title);
    };
    if first.is_empty() {
        bail!("heatmap {:?} has empty rows", h.title);
    }
    if let Some((i, r)) = h.values.iter().enumerate().find(|(_, r)| r.len() != first.len()) {
        bail!("heatmap {:?}: row {i} has {} values but row 0 has {}", h.title, r.len(), first.len());
    }
    let (rows, cols) = (h.values.len(), first.len());
    if !h.row_labels.is_empty() && h.row_labels.len() != rows {
        bail!("heatmap {:?}: {} row labels for {rows} rows", h.title, h.row_labels.len());
    }
    if !h.col_labels.is_empty() && h.col_labels.len() != cols {
        bail!("heatmap {:?}: {} column labels for {cols} columns", h.title, h.col_labels.len());
    }
    Ok(())
}

/// One heatmap filling the figure.
struct Single<'a>(Panel<'a>);

impl Figure for Single<'_> {
    fn size(&self) -> (u32, u32) {
        let (w, h) = self.0.size();
        (w as u32, h as u32)
    }
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, rasters: &mut Vec<Raster>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        self.0.draw(root, (0, 0), rasters)
    }
}

/// Panels in a grid under a title.
struct Grid<'a> {
    title: &'a str,
    panels: Vec<Panel<'a>>,
    ncols: usize,
}

impl Grid<'_> {
    /// Size of every grid slot (the largest panel) and the height of the title band.
    fn slot(&self) -> ((i32, i32), i32) {
        let w = self.panels.iter().map(|p| p.size().0).max().unwrap_or(0);
        let h = self.panels.iter().map(|p| p.size().1).max().unwrap_or(0);
        let title_h =
            if self.title.is_empty() { 6 } else { font::measure(self.title, TITLE_PX).1 as i32 + 20 };
        ((w, h), title_h)
    }
}

impl Figure for Grid<'_> {
    fn size(&self) -> (u32, u32) {
        let ((w, h), title_h) = self.slot();
        let nrows = self.panels.len().div_ceil(self.ncols) as i32;
        let width = (w * self.ncols as i32).max(font::width(self.title, TITLE_PX) as i32 + 40);
        (width as u32, (title_h + h * nrows) as u32)
    }
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, rasters: &mut Vec<Raster>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let ((w, h), title_h) = self.slot();
        if !self.title.is_empty() {
            let style = font::text(TITLE_PX).color(&INK).pos(Pos::new(HPos::Center, VPos::Top));
            root.draw(&Text::new(self.title.to_string(), (self.size().0 as i32 / 2, 12), style))?;
        }
        for (i, p) in self.panels.iter().enumerate() {
            let (r, c) = ((i / self.ncols) as i32, (i % self.ncols) as i32);
            p.draw(root, (c * w, title_h + r * h), rasters)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "heatmap_tests.rs"]
mod tests;
