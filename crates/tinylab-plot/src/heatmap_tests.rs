use super::*;
use crate::testutil::{assert_png, assert_svg_has, out};

fn attention(n: usize) -> Heatmap {
    let values = (0..n)
        .map(|i| {
            let row: Vec<f64> =
                (0..n).map(|j| if j <= i { 1.0 / (1.0 + (i - j) as f64) } else { 0.0 }).collect();
            let sum: f64 = row.iter().sum();
            row.into_iter().map(|v| v / sum).collect()
        })
        .collect();
    Heatmap {
        title: format!("attention {n}x{n}"),
        values,
        x_label: "key position".into(),
        y_label: "query position".into(),
        colormap: Colormap::Sequential,
        ..Default::default()
    }
}

fn weights(rows: usize, cols: usize) -> Heatmap {
    Heatmap {
        title: "W_q".into(),
        values: (0..rows)
            .map(|i| (0..cols).map(|j| ((i * 7 + j * 3) as f64).sin() * 0.3).collect())
            .collect(),
        row_labels: (0..rows).map(|i| format!("d{i}")).collect(),
        col_labels: (0..cols).map(|j| format!("tok{j}")).collect(),
        x_label: "input".into(),
        y_label: "output".into(),
        colormap: Colormap::Diverging,
    }
}

#[test]
fn heatmap_png_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    for (name, h) in [("att", attention(16)), ("w", weights(12, 20))] {
        heatmap(&h, &out(&dir, &format!("{name}.png"))).unwrap();
        assert_png(&out(&dir, &format!("{name}.png")));
        heatmap(&h, &out(&dir, &format!("{name}.svg"))).unwrap();
        assert_svg_has(&out(&dir, &format!("{name}.svg")), &[&h.title, &h.x_label, &h.y_label]);
    }
}

#[test]
fn large_matrix_renders_at_reasonable_size() {
    let dir = tempfile::tempdir().unwrap();
    let h = attention(512);
    let (w, ht) = {
        heatmap(&h, &out(&dir, "big.png")).unwrap();
        assert_png(&out(&dir, "big.png"))
    };
    assert!((600..1000).contains(&w) && (600..1000).contains(&ht), "{w}x{ht}");
    heatmap(&h, &out(&dir, "big.svg")).unwrap();
    let svg = std::fs::read_to_string(out(&dir, "big.svg")).unwrap();
    assert!(svg.contains("data:image/png;base64,"), "large SVG heatmaps embed one image");
    assert!(svg.len() < 2_000_000, "SVG is {} bytes", svg.len());
    // Labels are thinned: at most 40 of the 512 row indices are written.
    assert!(svg.contains("\n500\n") && !svg.contains("\n511\n"));
}

#[test]
fn small_multiples_grid() {
    let dir = tempfile::tempdir().unwrap();
    let panels: Vec<Heatmap> =
        (0..6).map(|k| Heatmap { title: format!("L{} H{}", k / 3, k % 3), ..attention(8 + k) }).collect();
    small_multiples("attention by layer and head", &panels, 3, &out(&dir, "grid.png")).unwrap();
    assert_png(&out(&dir, "grid.png"));
    small_multiples("attention by layer and head", &panels, 3, &out(&dir, "grid.svg")).unwrap();
    assert_svg_has(&out(&dir, "grid.svg"), &["attention by layer and head", "L1 H2", "key position"]);
    assert!(small_multiples("t", &[], 2, &out(&dir, "e.png")).unwrap_err().to_string().contains("no panels"));
    assert!(small_multiples("t", &panels, 0, &out(&dir, "e.png")).is_err());
}

#[test]
fn bad_input_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = out(&dir, "x.png");
    let err = |h: Heatmap| heatmap(&h, &p).unwrap_err().to_string();
    assert!(err(Heatmap::default()).contains("no rows"));
    assert!(err(Heatmap { values: vec![vec![]], ..Default::default() }).contains("empty rows"));
    assert!(err(Heatmap { values: vec![vec![1.0, 2.0], vec![1.0]], ..Default::default() }).contains("row 1"));
    assert!(
        err(Heatmap { row_labels: vec!["a".into()], ..weights(2, 2) }).contains("1 row labels for 2 rows")
    );
    let bad_ext = heatmap(&weights(2, 2), &out(&dir, "x.pdf")).unwrap_err().to_string();
    assert!(bad_ext.contains("x.pdf") && bad_ext.contains(".svg"));
    let nan = Heatmap { values: vec![vec![f64::NAN, f64::INFINITY], vec![0.0, -1.0]], ..weights(2, 2) };
    heatmap(&nan, &p).unwrap();
    assert_png(&p);
}
