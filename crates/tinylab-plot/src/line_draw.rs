//! Drawing a validated [`LinePlot`]: mesh, bands, lines, markers, vertical markers, legend.

use anyhow::Result;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::axis::Axis;
use crate::font::{self, LABEL_PX, TICK_PX, TITLE_PX};
use crate::legend::{self, Entry, Swatch};
use crate::line::{ok, LinePlot, Ranges, Series};
use crate::output::{Figure, Raster};
use crate::style::{fmt_num, series_color, GRID, INK};

/// A series with at most this many plottable points gets markers.
const MARKER_MAX_POINTS: usize = 12;
/// About this many labelled ticks on the x and y axes.
const X_TICKS: usize = 9;
const Y_TICKS: usize = 8;

pub(crate) struct LineFigure<'a> {
    pub p: &'a LinePlot,
    pub ranges: Ranges,
}

impl Figure for LineFigure<'_> {
    fn size(&self) -> (u32, u32) {
        (960, 600)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, _: &mut Vec<Raster>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let Ranges { x: (x0, x1), y: (y0, y1) } = self.ranges;
        self.chart(root, Axis::new(x0, x1, self.p.x_log, X_TICKS), Axis::new(y0, y1, self.p.y_log, Y_TICKS))
    }
}

impl LineFigure<'_> {
    fn chart<DB>(&self, root: &DrawingArea<DB, Shift>, xr: Axis, yr: Axis) -> Result<()>
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static,
    {
        let p = self.p;
        let (xl, yl) = (p.x_log, p.y_log);
        let mut chart = ChartBuilder::on(root)
            .caption(&p.title, font::text(TITLE_PX).color(&INK))
            .margin(14)
            .margin_right(30)
            .x_label_area_size(58)
            .y_label_area_size(self.y_label_area())
            .build_cartesian_2d(xr, yr)?;
        chart
            .configure_mesh()
            .x_desc(p.x_label.as_str())
            .y_desc(p.y_label.as_str())
            .axis_desc_style(font::text(LABEL_PX).color(&INK))
            .label_style(font::text(TICK_PX).color(&INK))
            .x_label_formatter(&|v| fmt_num(*v))
            .y_label_formatter(&|v| fmt_num(*v))
            .bold_line_style(GRID)
            .light_line_style(GRID.mix(0.45))
            .axis_style(INK)
            .draw()?;

        // Bands first, so every line stays visible on top of every band.
        for (i, s) in p.series.iter().enumerate() {
            if let Some((lo, hi)) = &s.band {
                let fill = series_color(i).mix(0.18).filled();
                let idx: Vec<usize> =
                    (0..s.x.len()).filter(|&k| ok(s.x[k], xl) && ok(lo[k], yl) && ok(hi[k], yl)).collect();
                for run in runs(&idx) {
                    let mut poly: Vec<(f64, f64)> = run.iter().map(|&k| (s.x[k], hi[k])).collect();
                    poly.extend(run.iter().rev().map(|&k| (s.x[k], lo[k])));
                    chart.draw_series(std::iter::once(Polygon::new(poly, fill)))?;
                }
            }
        }
        let mut obstacles = Vec::new();
        let mut entries = Vec::new();
        for (i, s) in p.series.iter().enumerate() {
            let color = series_color(i);
            let idx = plottable(s, xl, yl);
            for run in runs(&idx) {
                let pts: Vec<(f64, f64)> = run.iter().map(|&k| (s.x[k], s.y[k])).collect();
                if pts.len() == 1 {
                    chart.draw_series(std::iter::once(Circle::new(pts[0], 2, color.filled())))?;
                }
                chart.draw_series(std::iter::once(PathElement::new(pts.clone(), color.stroke_width(2))))?;
                let px: Vec<(i32, i32)> = pts.iter().map(|q| chart.backend_coord(q)).collect();
                legend::densify(&px, 6.0, &mut obstacles);
            }
            let marker = idx.len() <= MARKER_MAX_POINTS;
            if marker {
                let dots = idx.iter().map(|&k| Circle::new((s.x[k], s.y[k]), 4, color.filled()));
                chart.draw_series(dots)?;
            }
            if let Some((lo, hi)) = &s.band {
                for b in [lo, hi] {
                    let px: Vec<(i32, i32)> = (0..s.x.len())
                        .filter(|&k| ok(s.x[k], xl) && ok(b[k], yl))
                        .map(|k| chart.backend_coord(&(s.x[k], b[k])))
                        .collect();
                    legend::densify(&px, 6.0, &mut obstacles);
                }
            }
            if !s.label.is_empty() {
                let swatch = Swatch::Line { marker, band: s.band.is_some() };
                entries.push(Entry { label: s.label.clone(), color, swatch });
            }
        }

        let area = chart.plotting_area().get_pixel_range();
        let labels = self.vlines(&mut chart, root, area.clone(), &obstacles)?;
        let at = legend::place(area, legend::size(&entries), &obstacles, &labels);
        legend::draw(root, at, &entries)
    }

    /// Draws the vertical dashed lines and their labels; returns the labels' pixel boxes.
    /// Each label goes beside its line, at the top or bottom of the plot, wherever it covers
    /// the fewest `data` pixels without overlapping an earlier label.
    fn vlines<DB>(
        &self,
        chart: &mut ChartContext<DB, Cartesian2d<Axis, Axis>>,
        root: &DrawingArea<DB, Shift>,
        (xs, ys): (std::ops::Range<i32>, std::ops::Range<i32>),
        data: &[(i32, i32)],
    ) -> Result<Vec<(i32, i32, i32, i32)>>
    where
        DB: DrawingBackend,
        DB::ErrorType: 'static,
    {
        let (y0, y1) = self.ranges.y;
        let mut vl: Vec<&(f64, String)> = self.p.vlines.iter().filter(|v| ok(v.0, self.p.x_log)).collect();
        vl.sort_by(|a, b| a.0.total_cmp(&b.0));
        let style = INK.mix(0.55).stroke_width(1);
        let px = TICK_PX - 1.0;
        let h = font::measure("Ag", px).1.ceil() as i32 + 2;
        let mut boxes: Vec<(i32, i32, i32, i32)> = Vec::new();
        for (x, label) in vl {
            chart.draw_series(DashedLineSeries::new(vec![(*x, y0), (*x, y1)], 6, 4, style))?;
            if label.is_empty() {
                continue;
            }
            let lx = chart.backend_coord(&(*x, y1)).0;
            let w = font::width(label, px).ceil() as i32;
            let mut best = (usize::MAX, (0, 0, 0, 0), true);
            for row in 0..4 {
                for top in [true, false] {
                    let ty = if top { ys.start + 5 + row * (h + 3) } else { ys.end - 5 - h - row * (h + 3) };
                    for right in [true, false] {
                        let bx0 = if right { lx + 4 } else { lx - 4 - w };
                        let b = (bx0, ty, bx0 + w, ty + h);
                        let off = b.0 < xs.start || b.2 > xs.end;
                        let clash =
                            boxes.iter().any(|o| o.0 < b.2 + 4 && o.2 + 4 > b.0 && o.1 < b.3 && o.3 > b.1);
                        let hits =
                            data.iter().filter(|p| p.0 >= b.0 && p.0 <= b.2 && p.1 >= b.1 && p.1 <= b.3);
                        let score = hits.count() + 10_000 * (off || clash) as usize + row as usize;
                        if score < best.0 {
                            best = (score, b, right);
                        }
                    }
                }
            }
            let (_, b, right) = best;
            let (tx, anchor) = if right { (b.0, HPos::Left) } else { (b.2, HPos::Right) };
            let text = font::text(px).color(&INK).pos(Pos::new(anchor, VPos::Top));
            root.draw(&Rectangle::new([(b.0 - 2, b.1), (b.2 + 2, b.3)], WHITE.mix(0.75).filled()))?;
            root.draw(&Text::new(label.clone(), (tx, b.1 + 1), text))?;
            boxes.push(b);
        }
        Ok(boxes)
    }

    /// Room for the y tick labels (estimated from the widest) plus the rotated axis label.
    fn y_label_area(&self) -> i32 {
        let (y0, y1) = self.ranges.y;
        let widest = Axis::new(y0, y1, self.p.y_log, Y_TICKS)
            .labelled()
            .iter()
            .map(|v| font::width(&fmt_num(*v), TICK_PX))
            .fold(0.0, f64::max);
        widest.ceil() as i32 + 52
    }
}

/// Indices of the points of `s` that can be drawn with the given log settings.
fn plottable(s: &Series, x_log: bool, y_log: bool) -> Vec<usize> {
    (0..s.x.len()).filter(|&k| ok(s.x[k], x_log) && ok(s.y[k], y_log)).collect()
}

/// Splits sorted indices into runs of consecutive indices (gaps break lines and bands).
fn runs(idx: &[usize]) -> Vec<&[usize]> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=idx.len() {
        if i == idx.len() || idx[i] != idx[i - 1] + 1 {
            if i > start {
                out.push(&idx[start..i]);
            }
            start = i;
        }
    }
    out
}
