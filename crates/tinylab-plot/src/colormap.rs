//! Colour maps for heatmaps: value range and value → colour.

use plotters::style::RGBColor;

/// How a [`Heatmap`](crate::Heatmap) turns values into colours.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Colormap {
    /// Blue (negative) – white (0) – red (positive), symmetric about 0 over
    /// `±max|v|`: for signed values such as weights or their differences.
    #[default]
    Diverging,
    /// White (low) → dark blue (high), over `[min(0, min v), max(1, max v)]`: attention
    /// patterns in `[0, 1]` keep the fixed 0–1 scale (so panels compare directly); values
    /// outside it widen the range.
    Sequential,
}

/// Colour for values that are not finite (NaN, ±∞).
pub(crate) const MISSING: RGBColor = RGBColor(190, 190, 190);

// ColorBrewer RdBu (reversed: blue low, red high), 9 classes.
const DIVERGING: [(u8, u8, u8); 9] = [
    (33, 102, 172),
    (67, 147, 195),
    (146, 197, 222),
    (209, 229, 240),
    (247, 247, 247),
    (253, 219, 199),
    (244, 165, 130),
    (214, 96, 77),
    (178, 24, 43),
];
// ColorBrewer Blues, 9 classes, from pure white.
const SEQUENTIAL: [(u8, u8, u8); 9] = [
    (255, 255, 255),
    (222, 235, 247),
    (198, 219, 239),
    (158, 202, 225),
    (107, 174, 214),
    (66, 146, 198),
    (33, 113, 181),
    (8, 81, 156),
    (8, 48, 107),
];

impl Colormap {
    /// The value range `(lo, hi)` the colours span for `values` (non-finite ones ignored).
    pub(crate) fn range<'a>(self, values: impl Iterator<Item = &'a f64>) -> (f64, f64) {
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for &v in values.filter(|v| v.is_finite()) {
            lo = lo.min(v);
            hi = hi.max(v);
        }
        match self {
            Colormap::Diverging => {
                let m = lo.abs().max(hi.abs());
                let m = if m.is_finite() && m > 0.0 { m } else { 1.0 };
                (-m, m)
            }
            Colormap::Sequential => {
                let lo = if lo.is_finite() { lo.min(0.0) } else { 0.0 };
                let hi = if hi.is_finite() { hi.max(1.0) } else { 1.0 };
                (lo, hi)
            }
        }
    }

    /// The colour of `v` on the range `(lo, hi)`; values outside are clamped.
    pub(crate) fn color(self, v: f64, (lo, hi): (f64, f64)) -> RGBColor {
        if !v.is_finite() {
            return MISSING;
        }
        let t = if hi > lo { ((v - lo) / (hi - lo)).clamp(0.0, 1.0) } else { 0.5 };
        let stops = match self {
            Colormap::Diverging => &DIVERGING,
            Colormap::Sequential => &SEQUENTIAL,
        };
        let pos = t * (stops.len() - 1) as f64;
        let i = (pos.floor() as usize).min(stops.len() - 2);
        let f = pos - i as f64;
        let (a, b) = (stops[i], stops[i + 1]);
        let mix = |x: u8, y: u8| (x as f64 + (y as f64 - x as f64) * f).round() as u8;
        RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let v = [-0.5, 2.0, f64::NAN];
        assert_eq!(Colormap::Diverging.range(v.iter()), (-2.0, 2.0));
        assert_eq!(Colormap::Sequential.range([0.1, 0.3].iter()), (0.0, 1.0));
        assert_eq!(Colormap::Sequential.range(v.iter()), (-0.5, 2.0));
        assert_eq!(Colormap::Diverging.range([0.0].iter()), (-1.0, 1.0));
        assert_eq!(Colormap::Diverging.range([f64::NAN].iter()), (-1.0, 1.0));
    }

    #[test]
    fn colours() {
        let d = Colormap::Diverging;
        assert_eq!(d.color(0.0, (-1.0, 1.0)), RGBColor(247, 247, 247));
        assert_eq!(d.color(-5.0, (-1.0, 1.0)), RGBColor(33, 102, 172));
        assert_eq!(d.color(1.0, (-1.0, 1.0)), RGBColor(178, 24, 43));
        assert_eq!(Colormap::Sequential.color(0.0, (0.0, 1.0)), RGBColor(255, 255, 255));
        assert_eq!(d.color(f64::NAN, (0.0, 1.0)), MISSING);
    }
}
