//! Helpers for the tests: output paths and checks that a written plot is real.

use std::path::{Path, PathBuf};

/// `name` inside the temporary directory `dir`.
pub(crate) fn out(dir: &tempfile::TempDir, name: &str) -> PathBuf {
    dir.path().join(name)
}

/// Decodes the PNG at `path` and checks it is non-empty and not a single flat colour;
/// returns its (width, height).
pub(crate) fn assert_png(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(!bytes.is_empty(), "{} is empty", path.display());
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().expect("PNG header decodes");
    let mut buf = vec![0; reader.output_buffer_size().expect("buffer size")];
    let info = reader.next_frame(&mut buf).expect("PNG image data decodes");
    let px = &buf[..info.buffer_size()];
    let step = info.color_type.samples();
    let first = &px[..step];
    assert!(px.chunks(step).any(|c| c != first), "{} is a single flat colour", path.display());
    (info.width, info.height)
}

/// Checks the SVG at `path` is non-empty and contains each of `texts`.
pub(crate) fn assert_svg_has(path: &Path, texts: &[&str]) {
    let svg = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"),
        "{} is not an SVG",
        path.display()
    );
    for t in texts {
        assert!(svg.contains(t), "{} lacks {t:?}", path.display());
    }
}
