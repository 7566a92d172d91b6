//! The bundled font (DejaVu Sans, see `assets/DejaVuSans-LICENSE.txt`) and the text styles
//! every plot uses.
//!
//! Text goes through plotters' `ab_glyph` support, which only knows fonts registered at run
//! time: [`ensure`] registers the bundled file once per process as the `sans-serif` family,
//! so no system font library or installed font is ever needed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Once, OnceLock};

use ab_glyph::{Font, FontRef, PxScale, ScaleFont};
use anyhow::{bail, Result};
use plotters::style::{register_font, FontStyle, IntoFont, TextStyle};

/// DejaVu Sans, compiled into the crate.
static BYTES: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// The family name the font is registered under (plotters' default family).
pub(crate) const FAMILY: &str = "sans-serif";

/// Title text size in pixels.
pub(crate) const TITLE_PX: f64 = 25.0;
/// Axis-label (and panel-title) text size in pixels.
pub(crate) const LABEL_PX: f64 = 19.0;
/// Tick-label, legend and annotation text size in pixels.
pub(crate) const TICK_PX: f64 = 16.0;

static REGISTER: Once = Once::new();
static REGISTERED: AtomicBool = AtomicBool::new(false);

/// Registers the bundled font with plotters (once); errors if the font could not be parsed.
pub(crate) fn ensure() -> Result<()> {
    REGISTER.call_once(|| {
        let ok = register_font(FAMILY, FontStyle::Normal, BYTES).is_ok() && face().is_some();
        REGISTERED.store(ok, Ordering::Release);
    });
    if !REGISTERED.load(Ordering::Acquire) {
        bail!("the bundled font assets/DejaVuSans.ttf could not be parsed");
    }
    Ok(())
}

/// A text style of `px` pixels in the bundled font.
pub(crate) fn text(px: f64) -> TextStyle<'static> {
    (FAMILY, px).into_font().into()
}

/// The bundled font parsed for direct measuring and rasterising (`None` if unparsable, which
/// [`ensure`] reports as an error before any drawing starts).
pub(crate) fn face() -> Option<&'static FontRef<'static>> {
    static FACE: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FACE.get_or_init(|| FontRef::try_from_slice(BYTES).ok()).as_ref()
}

/// The ab_glyph scale for a plotters text size: the em is `size / 1.24` pixels, as in
/// plotters' SVG output, so PNG and SVG text come out the same size.
pub(crate) fn scale(face: &FontRef<'_>, size: f64) -> PxScale {
    let upm = face.units_per_em().unwrap_or(2048.0) as f64;
    PxScale::from((size / 1.24 * face.height_unscaled() as f64 / upm) as f32)
}

/// Advance width and line height (ascent − descent) of `text` at `size`, in pixels.
pub(crate) fn measure(text: &str, size: f64) -> (f64, f64) {
    let Some(face) = face() else {
        return (text.chars().count() as f64 * size * 0.5, size);
    };
    let f = face.as_scaled(scale(face, size));
    let mut w = 0.0;
    let mut prev = None;
    for c in text.chars() {
        let id = f.glyph_id(c);
        if let Some(p) = prev {
            w += f.kern(p, id);
        }
        w += f.h_advance(id);
        prev = Some(id);
    }
    (w as f64, (f.ascent() - f.descent()) as f64)
}

/// Advance width of `text` at `size`, in pixels.
pub(crate) fn width(text: &str, size: f64) -> f64 {
    measure(text, size).0
}
