//! Rendering a figure to PNG or SVG bytes, chosen by the output path's extension, and writing
//! the file atomically (a temporary file in the same directory, then a rename).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{anyhow, bail, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::{BitMapBackend, DrawingArea, DrawingBackend, IntoDrawingArea, SVGBackend, WHITE};

use crate::font;
use crate::raster_text::GlyphFix;

/// The output formats, chosen from the path's extension (case-insensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Png,
    Svg,
}

impl Format {
    /// The format for `path`, or an error naming the path and the allowed extensions.
    pub(crate) fn from_path(path: &Path) -> Result<Format> {
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        match ext.as_deref() {
            Some("png") => Ok(Format::Png),
            Some("svg") => Ok(Format::Svg),
            _ => {
                bail!("cannot write plot to {}: unsupported extension (allowed: .png, .svg)", path.display())
            }
        }
    }
}

/// A block of pixels placed on the figure after plotters has drawn (used for large heatmaps,
/// where one rectangle per cell would be slow and, in SVG, huge). `rgb` holds `cols × rows`
/// source pixels, row-major, scaled by nearest neighbour to `w × h` pixels at `(x, y)`.
pub(crate) struct Raster {
    pub x: i32,
    pub y: i32,
    pub w: u32,
    pub h: u32,
    pub cols: usize,
    pub rows: usize,
    pub rgb: Vec<u8>,
}

/// Something that can be drawn on any plotters backend.
pub(crate) trait Figure {
    /// The canvas size in pixels (width, height).
    fn size(&self) -> (u32, u32);
    /// Draws onto `root` (already filled white); large pixel blocks may go to `rasters`.
    fn draw<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        rasters: &mut Vec<Raster>,
    ) -> Result<()>
    where
        DB::ErrorType: 'static;
}

/// Renders `fig` in the format `path` asks for and writes it there atomically.
pub(crate) fn save(fig: &impl Figure, path: &Path) -> Result<()> {
    let format = Format::from_path(path)?;
    font::ensure()?;
    let bytes = match format {
        Format::Png => render_png(fig),
        Format::Svg => render_svg(fig),
    }
    .with_context(|| format!("rendering plot for {}", path.display()))?;
    write_atomic(path, &bytes)
}

fn render_png(fig: &impl Figure) -> Result<Vec<u8>> {
    let (w, h) = fig.size();
    let mut buf = vec![255u8; w as usize * h as usize * 3];
    let mut rasters = Vec::new();
    {
        let root = GlyphFix::new(BitMapBackend::with_buffer(&mut buf, (w, h)))?.into_drawing_area();
        root.fill(&WHITE)?;
        fig.draw(&root, &mut rasters)?;
        root.present()?;
    }
    for r in &rasters {
        blit(&mut buf, (w, h), r);
    }
    encode_png(&buf, w, h)
}

fn render_svg(fig: &impl Figure) -> Result<Vec<u8>> {
    let (w, h) = fig.size();
    let mut svg = String::new();
    let mut rasters = Vec::new();
    {
        let root = SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area();
        root.fill(&WHITE)?;
        fig.draw(&root, &mut rasters)?;
        root.present()?;
    }
    if !rasters.is_empty() {
        let end = svg.rfind("</svg>").ok_or_else(|| anyhow!("plotters produced an SVG without </svg>"))?;
        let mut images = String::new();
        for r in &rasters {
            let png = encode_png(&r.rgb, r.cols as u32, r.rows as u32)?;
            images.push_str(&format!(
                "<image x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" preserveAspectRatio=\"none\" \
                 style=\"image-rendering:pixelated\" href=\"data:image/png;base64,{}\"/>\n",
                r.x,
                r.y,
                r.w,
                r.h,
                base64(&png)
            ));
        }
        svg.insert_str(end, &images);
    }
    Ok(svg.into_bytes())
}

/// Copies `r` into the RGB buffer `buf` of size `(w, h)`, scaling by nearest neighbour and
/// clipping at the edges.
fn blit(buf: &mut [u8], (w, h): (u32, u32), r: &Raster) {
    if r.cols == 0 || r.rows == 0 {
        return;
    }
    for dy in 0..r.h as i64 {
        let y = r.y as i64 + dy;
        if y < 0 || y >= h as i64 {
            continue;
        }
        let sy = (dy as usize * r.rows / r.h as usize).min(r.rows - 1);
        for dx in 0..r.w as i64 {
            let x = r.x as i64 + dx;
            if x < 0 || x >= w as i64 {
                continue;
            }
            let sx = (dx as usize * r.cols / r.w as usize).min(r.cols - 1);
            let src = (sy * r.cols + sx) * 3;
            let dst = (y as usize * w as usize + x as usize) * 3;
            buf[dst..dst + 3].copy_from_slice(&r.rgb[src..src + 3]);
        }
    }
}

fn encode_png(rgb: &[u8], w: u32, h: u32) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header()?;
        writer.write_image_data(rgb)?;
        writer.finish()?;
    }
    Ok(out)
}

/// Standard base64 (RFC 4648, with padding), for PNGs embedded in SVG.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`, so readers
/// never see a half-written plot.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().ok_or_else(|| anyhow!("plot path {} has no file name", path.display()))?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp: PathBuf = dir.join(format!(".{}.tmp-{}-{n}", name.to_string_lossy(), std::process::id()));
    let result = (|| -> Result<()> {
        let mut f = fs::File::create(&tmp)
            .with_context(|| format!("creating {} (does the directory exist?)", tmp.display()))?;
        f.write_all(bytes).with_context(|| format!("writing {}", tmp.display()))?;
        f.sync_all().with_context(|| format!("syncing {}", tmp.display()))?;
        fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_examples() {
        let cases = [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foobar", "Zm9vYmFy")];
        for (input, want) in cases {
            assert_eq!(base64(input.as_bytes()), want);
        }
    }

    #[test]
    fn format_from_extension() {
        assert_eq!(Format::from_path(Path::new("a/b.png")).unwrap(), Format::Png);
        assert_eq!(Format::from_path(Path::new("b.SVG")).unwrap(), Format::Svg);
        let err = Format::from_path(Path::new("out/plot.jpg")).unwrap_err().to_string();
        assert!(err.contains("out/plot.jpg") && err.contains(".png") && err.contains(".svg"), "{err}");
        assert!(Format::from_path(Path::new("noext")).is_err());
    }
}
