//! Grouped bar charts with signed values (e.g. convolution filter taps per lag for q/k/v).

use std::path::Path;

use anyhow::{bail, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::axis::Axis;
use crate::font::{self, LABEL_PX, TICK_PX, TITLE_PX};
use crate::legend::{self, Entry, Swatch};
use crate::output::{self, Figure, Raster};
use crate::style::{fmt_num, padded, series_color, GRID, INK};

/// A grouped bar chart: for every category in `groups`, one bar per series side by side.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BarPlot {
    /// Title above the plot.
    pub title: String,
    /// X-axis label (under the category names).
    pub x_label: String,
    /// Y-axis label.
    pub y_label: String,
    /// The categories along x, in order (e.g. `["lag 0", "lag 1", …]`); at least one.
    pub groups: Vec<String>,
    /// `(name, values)` per series, one value per group (so `values.len() == groups.len()`).
    /// Values may be negative (the bar then hangs below the zero line); non-finite values
    /// draw no bar.
    pub series: Vec<(String, Vec<f64>)>,
}

/// Draws `p` to `path` (`.png` or `.svg`, chosen by the extension; written atomically).
///
/// The y axis always includes 0, drawn as a solid line; each series has its own colour and
/// a legend entry, placed where it covers the fewest bars. The figure is 960 pixels wide,
/// more when there are many bars; category names are thinned if they would collide.
/// Errors (never panics) on an unsupported extension, no groups or no series, a series whose
/// length differs from the number of groups, or I/O failure.
pub fn bar_plot(p: &BarPlot, path: &Path) -> Result<()> {
    output::Format::from_path(path)?;
    if p.groups.is_empty() {
        bail!("bar plot {:?} has no groups", p.title);
    }
    if p.series.is_empty() {
        bail!("bar plot {:?} has no series", p.title);
    }
    for (name, v) in &p.series {
        if v.len() != p.groups.len() {
            bail!(
                "bar plot {:?}: series {name:?} has {} values for {} groups",
                p.title,
                v.len(),
                p.groups.len()
            );
        }
    }
    output::save(&BarFigure(p), path)
}

struct BarFigure<'a>(&'a BarPlot);

impl Figure for BarFigure<'_> {
    fn size(&self) -> (u32, u32) {
        let bars = self.0.groups.len() * (self.0.series.len() + 1);
        ((160 + bars * 6).clamp(960, 2400) as u32, 600)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>, _: &mut Vec<Raster>) -> Result<()>
    where
        DB::ErrorType: 'static,
    {
        let p = self.0;
        let n = p.groups.len();
        let vals = p.series.iter().flat_map(|s| s.1.iter()).copied().filter(|v| v.is_finite());
        let (lo, hi) = vals.fold((0.0f64, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
        let (y0, y1) = padded(lo, hi, 0.06);
        let y_axis = Axis::new(y0, y1, false, 8);
        let y_area = y_axis.labelled().iter().map(|v| font::width(&fmt_num(*v), TICK_PX)).fold(0.0, f64::max);

        // Label every `stride`-th group so the names do not collide.
        let plot_w = self.size().0 as f64 - y_area - 120.0;
        let widest = p.groups.iter().map(|g| font::width(g, TICK_PX)).fold(0.0, f64::max);
        let stride = ((widest + 12.0) / (plot_w / n as f64)).ceil().max(1.0) as usize;
        let ticks = (0..n).step_by(stride).map(|i| i as f64).collect();
        let x_axis = Axis::with_ticks(-0.5, n as f64 - 0.5, ticks);

        let mut chart = ChartBuilder::on(root)
            .caption(&p.title, font::text(TITLE_PX).color(&INK))
            .margin(14)
            .margin_right(30)
            .x_label_area_size(58)
            .y_label_area_size(y_area.ceil() as i32 + 52)
            .build_cartesian_2d(x_axis, y_axis)?;
        let group_name = |v: &f64| p.groups.get(v.round() as usize).cloned().unwrap_or_default();
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc(p.x_label.as_str())
            .y_desc(p.y_label.as_str())
            .axis_desc_style(font::text(LABEL_PX).color(&INK))
            .label_style(font::text(TICK_PX).color(&INK))
            .x_label_formatter(&group_name)
            .y_label_formatter(&|v| fmt_num(*v))
            .bold_line_style(GRID)
            .light_line_style(TRANSPARENT)
            .axis_style(INK)
            .draw()?;

        let k = p.series.len() as f64;
        let bw = 0.8 / k;
        let mut covered = Vec::new();
        let mut entries = Vec::new();
        for (s, (name, values)) in p.series.iter().enumerate() {
            let color = series_color(s);
            for (g, &v) in values.iter().enumerate().filter(|(_, v)| v.is_finite()) {
                let x0 = g as f64 - 0.4 + s as f64 * bw + 0.04 * bw;
                let x1 = x0 + 0.92 * bw;
                chart.draw_series(std::iter::once(Rectangle::new([(x0, 0.0), (x1, v)], color.filled())))?;
                let (a, b) = (chart.backend_coord(&(x0, 0.0)), chart.backend_coord(&(x1, v)));
                for px in (a.0.min(b.0)..=a.0.max(b.0)).step_by(4) {
                    for py in (a.1.min(b.1)..=a.1.max(b.1)).step_by(4) {
                        covered.push((px, py));
                    }
                }
            }
            if !name.is_empty() {
                entries.push(Entry { label: name.clone(), color, swatch: Swatch::Box });
            }
        }
        let zero = [(-0.5, 0.0), (n as f64 - 0.5, 0.0)];
        chart.draw_series(std::iter::once(PathElement::new(zero, INK.stroke_width(1))))?;

        let area = chart.plotting_area().get_pixel_range();
        let at = legend::place(area, legend::size(&entries), &covered, &[]);
        legend::draw(root, at, &entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{assert_png, assert_svg_has, out};

    fn taps() -> BarPlot {
        BarPlot {
            title: "Short conv taps (layer 0)".into(),
            x_label: "lag".into(),
            y_label: "tap weight".into(),
            groups: (0..4).map(|i| format!("lag {i}")).collect(),
            series: vec![
                ("q".into(), vec![0.9, -0.3, 0.1, 0.0]),
                ("k".into(), vec![0.1, 0.8, -0.4, 0.05]),
                ("v".into(), vec![-0.5, 0.2, 0.3, f64::NAN]),
            ],
        }
    }

    #[test]
    fn bar_plot_png_and_svg() {
        let dir = tempfile::tempdir().unwrap();
        bar_plot(&taps(), &out(&dir, "taps.png")).unwrap();
        assert_png(&out(&dir, "taps.png"));
        bar_plot(&taps(), &out(&dir, "taps.svg")).unwrap();
        assert_svg_has(
            &out(&dir, "taps.svg"),
            &["Short conv taps (layer 0)", "tap weight", "lag 3", "\nk\n"],
        );
        let many = BarPlot {
            groups: (0..64).map(|i| format!("lag {i}")).collect(),
            series: vec![("q".into(), (0..64).map(|i| (i as f64 * 0.3).sin()).collect())],
            ..taps()
        };
        bar_plot(&many, &out(&dir, "many.png")).unwrap();
        assert_png(&out(&dir, "many.png"));
        let zeros = BarPlot { series: vec![("z".into(), vec![0.0; 4])], ..taps() };
        bar_plot(&zeros, &out(&dir, "zeros.svg")).unwrap();
    }

    #[test]
    fn bad_input_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = out(&dir, "b.png");
        assert!(bar_plot(&BarPlot { groups: vec![], ..taps() }, &p)
            .unwrap_err()
            .to_string()
            .contains("no groups"));
        assert!(bar_plot(&BarPlot { series: vec![], ..taps() }, &p)
            .unwrap_err()
            .to_string()
            .contains("no series"));
        let short = BarPlot { series: vec![("q".into(), vec![1.0])], ..taps() };
        assert!(bar_plot(&short, &p).unwrap_err().to_string().contains("1 values for 4 groups"));
        assert!(bar_plot(&taps(), &out(&dir, "b.txt")).unwrap_err().to_string().contains("b.txt"));
        assert!(!p.exists());
    }
}
