//! Plots for tinylab: learning curves, heatmaps, bar charts and spectra, written as PNG or
//! SVG from the command line with no system font library (the DejaVu Sans font is bundled).
//!
//! | function | draws |
//! |---|---|
//! | [`line_plot`] | a [`LinePlot`]: curves with shaded bands, log axes, stage markers |
//! | [`mean_band`] | (no drawing) mean ± std across runs, for [`Series::band`] |
//! | [`heatmap`] | a [`Heatmap`] with a colour bar (weights, attention patterns) |
//! | [`small_multiples`] | a grid of [`Heatmap`]s (layers × heads), each with its own scale |
//! | [`bar_plot`] | a [`BarPlot`]: grouped, signed bars (e.g. conv taps per lag) |
//! | [`spectrum_plot`] | singular values against index, one line per matrix |
//!
//! The output format follows the path's extension, `.png` or `.svg` (anything else is an
//! error), and files are written atomically: a temporary file in the same directory is
//! renamed over the target. Bad input (empty data, mismatched lengths) is an error, never a
//! panic.

#![warn(missing_docs)]

mod axis;
mod band;
mod bar;
mod colormap;
mod font;
mod heatmap;
mod heatmap_draw;
mod legend;
mod line;
mod line_draw;
mod output;
mod raster_text;
mod style;

pub use band::mean_band;
pub use bar::{bar_plot, BarPlot};
pub use colormap::Colormap;
pub use heatmap::{heatmap, small_multiples, Heatmap};
pub use line::{line_plot, spectrum_plot, LinePlot, Series};
#[cfg(test)]
mod testutil;
