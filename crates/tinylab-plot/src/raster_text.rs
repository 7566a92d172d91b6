//! Correct glyph placement for bitmap output.
//!
//! plotters 0.3.7's `ab_glyph` text drawing drops each glyph's left side bearing (it places
//! the glyph's ink box, not its origin, at the pen position), so PNG text looks unevenly
//! spaced ("1 28 token s"). [`GlyphFix`] wraps a backend and rasterises text itself with
//! `ab_glyph` from the bundled font, placing every glyph at its proper origin; every other
//! call is forwarded unchanged. The em size matches the SVG backend's (`size / 1.24`), so PNG
//! and SVG text come out the same size.

use ab_glyph::{Font, FontRef, ScaleFont};
use plotters::prelude::DrawingBackend;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind};

use crate::font;

/// A backend whose text is drawn by [`GlyphFix::draw_text`]; everything else goes to `B`.
pub(crate) struct GlyphFix<B> {
    inner: B,
    face: &'static FontRef<'static>,
}

impl<B: DrawingBackend> GlyphFix<B> {
    /// Wraps `inner`; errors only if the bundled font cannot be parsed.
    pub(crate) fn new(inner: B) -> anyhow::Result<Self> {
        let face = font::face().ok_or_else(|| anyhow::anyhow!("the bundled font could not be parsed"))?;
        Ok(GlyphFix { inner, face })
    }
}

impl<B: DrawingBackend> DrawingBackend for GlyphFix<B> {
    type ErrorType = B::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }
    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.ensure_prepared()
    }
    fn present(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.present()
    }
    fn draw_pixel(&mut self, p: BackendCoord, c: BackendColor) -> Result<(), DrawingErrorKind<B::ErrorType>> {
        self.inner.draw_pixel(p, c)
    }
    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_line(from, to, style)
    }
    fn draw_rect<S: BackendStyle>(
        &mut self,
        a: BackendCoord,
        b: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_rect(a, b, style, fill)
    }
    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_path(path, style)
    }
    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_circle(center, radius, style, fill)
    }
    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.fill_polygon(vert, style)
    }
    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.blit_bitmap(pos, size, src)
    }

    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> Result<(u32, u32), DrawingErrorKind<Self::ErrorType>> {
        let (w, h) = font::measure(text, style.size());
        Ok((w.ceil() as u32, h.ceil() as u32))
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        let color = style.color();
        if color.alpha == 0.0 || text.is_empty() {
            return Ok(());
        }
        let scale = font::scale(self.face, style.size());
        let (w, h) = font::measure(text, style.size());
        let (w, h) = (w as f32, h as f32);
        let f = self.face.as_scaled(scale);
        // Offsets of the text box's top-left corner from `pos`, before rotation.
        let dx = match style.anchor().h_pos {
            HPos::Left => 0.0,
            HPos::Center => -w / 2.0,
            HPos::Right => -w,
        };
        let dy = match style.anchor().v_pos {
            VPos::Top => 0.0,
            VPos::Center => -h / 2.0,
            VPos::Bottom => -h,
        };
        let trans = style.transform();
        let (bw, bh) = self.inner.get_size();
        let mut caret = 0.0f32;
        let mut prev = None;
        for c in text.chars() {
            let id = f.glyph_id(c);
            if let Some(p) = prev {
                caret += f.kern(p, id);
            }
            prev = Some(id);
            let glyph = id.with_scale_and_position(scale, ab_glyph::point(dx + caret, dy + f.ascent()));
            caret += f.h_advance(id);
            let Some(outline) = self.face.outline_glyph(glyph) else { continue };
            let bounds = outline.px_bounds();
            let mut pixels = Vec::new();
            outline.draw(|x, y, cov| {
                if cov > 0.0 {
                    pixels.push((bounds.min.x as i32 + x as i32, bounds.min.y as i32 + y as i32, cov));
                }
            });
            for (x, y, cov) in pixels {
                let (tx, ty) = trans.transform(x, y);
                let (px, py) = (pos.0 + tx, pos.1 + ty);
                if px >= 0 && py >= 0 && (px as u32) < bw && (py as u32) < bh {
                    let c = BackendColor { alpha: color.alpha * cov.min(1.0) as f64, rgb: color.rgb };
                    self.inner.draw_pixel((px, py), c)?;
                }
            }
        }
        Ok(())
    }
}
