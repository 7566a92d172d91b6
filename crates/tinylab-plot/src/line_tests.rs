use super::*;
use crate::testutil::{assert_png, assert_svg_has, out};

fn curves() -> LinePlot {
    let steps: Vec<f64> = (0..200).map(|i| i as f64 * 50.0).collect();
    let loss = |k: f64| steps.iter().map(|s| 3.0 * (-s / k).exp() + 0.05).collect::<Vec<_>>();
    let a = loss(2000.0);
    let band = (a.iter().map(|v| v * 0.85).collect(), a.iter().map(|v| v * 1.15).collect());
    LinePlot {
        title: "MQAR training loss".into(),
        x_label: "training step".into(),
        y_label: "cross-entropy loss".into(),
        series: vec![
            Series { label: "attention".into(), x: steps.clone(), y: a, band: Some(band) },
            Series { label: "hyena".into(), x: steps.clone(), y: loss(4000.0), band: None },
        ],
        vlines: vec![(3000.0, "stage 2".into()), (6000.0, "stage 3".into())],
        ..Default::default()
    }
}

#[test]
fn line_plot_png_and_svg() {
    let dir = tempfile::tempdir().unwrap();
    for log in [false, true] {
        let p = LinePlot { y_log: log, ..curves() };
        line_plot(&p, &out(&dir, &format!("loss-{log}.png"))).unwrap();
        assert_png(&out(&dir, &format!("loss-{log}.png")));
        line_plot(&p, &out(&dir, &format!("loss-{log}.svg"))).unwrap();
        assert_svg_has(
            &out(&dir, &format!("loss-{log}.svg")),
            &["MQAR training loss", "training step", "cross-entropy loss", "stage 2", "hyena"],
        );
    }
}

#[test]
fn few_points_get_markers_and_log_x() {
    let dir = tempfile::tempdir().unwrap();
    let p = LinePlot {
        title: "accuracy vs length".into(),
        x_label: "sequence length".into(),
        y_label: "accuracy".into(),
        x_log: true,
        series: vec![Series {
            label: "seed mean".into(),
            x: vec![64.0, 128.0, 256.0, 512.0, 1024.0],
            y: vec![1.0, 0.98, 0.9, 0.6, 0.3],
            band: None,
        }],
        ..Default::default()
    };
    line_plot(&p, &out(&dir, "acc.png")).unwrap();
    assert_png(&out(&dir, "acc.png"));
}

#[test]
fn log_axes_skip_zero_and_negative_values() {
    let dir = tempfile::tempdir().unwrap();
    let p = LinePlot {
        title: "log".into(),
        x_log: true,
        y_log: true,
        series: vec![Series {
            label: "s".into(),
            x: vec![-1.0, 0.0, 1.0, 2.0, 3.0, 4.0],
            y: vec![1.0, 1.0, 0.0, -2.0, 0.5, f64::NAN],
            band: Some((vec![-1.0; 6], vec![2.0; 6])),
        }],
        vlines: vec![(0.0, "zero".into()), (-3.0, "neg".into())],
        ..Default::default()
    };
    for ext in ["png", "svg"] {
        line_plot(&p, &out(&dir, &format!("log.{ext}"))).unwrap();
    }
    // Nothing positive at all: a clear error, not a panic.
    let none = LinePlot {
        series: vec![Series { y: vec![0.0, -1.0], x: vec![1.0, 2.0], ..p.series[0].clone() }],
        ..p
    };
    let none = LinePlot { series: vec![Series { band: None, ..none.series[0].clone() }], ..none };
    let err = line_plot(&none, &out(&dir, "none.png")).unwrap_err().to_string();
    assert!(err.contains("no plottable points") && err.contains("log axis"), "{err}");
}

#[test]
fn empty_and_mismatched_series_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = out(&dir, "e.png");
    let err = line_plot(&LinePlot { title: "t".into(), ..Default::default() }, &path).unwrap_err();
    assert!(err.to_string().contains("no series"), "{err}");
    let empty =
        LinePlot { series: vec![Series { label: "s".into(), ..Default::default() }], ..Default::default() };
    assert!(line_plot(&empty, &path).unwrap_err().to_string().contains("is empty"));
    let bad = LinePlot {
        series: vec![Series { label: "s".into(), x: vec![1.0, 2.0], y: vec![1.0], band: None }],
        ..Default::default()
    };
    assert!(line_plot(&bad, &path).unwrap_err().to_string().contains("2 x values but 1 y values"));
    assert!(!path.exists());
}

#[test]
fn bad_extension_is_an_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = out(&dir, "loss.jpg");
    let err = line_plot(&curves(), &path).unwrap_err().to_string();
    assert!(err.contains("loss.jpg") && err.contains(".png") && err.contains(".svg"), "{err}");
    assert!(!path.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "no temp file left behind");
}

#[test]
fn spectrum_plot_both_formats() {
    let dir = tempfile::tempdir().unwrap();
    let spectra: Vec<(String, Vec<f64>)> = ["W_q", "W_k", "W_v"]
        .iter()
        .enumerate()
        .map(|(j, n)| {
            (n.to_string(), (0..32).map(|i| 10.0 * (-(i as f64) / (4.0 + j as f64)).exp()).collect())
        })
        .collect();
    spectrum_plot("layer 0 spectra", &spectra, true, &out(&dir, "s.png")).unwrap();
    assert_png(&out(&dir, "s.png"));
    spectrum_plot("layer 0 spectra", &spectra, false, &out(&dir, "s.svg")).unwrap();
    assert_svg_has(&out(&dir, "s.svg"), &["layer 0 spectra", "singular value", "index", "W_k"]);
    assert!(spectrum_plot("x", &[("empty".into(), vec![])], true, &out(&dir, "e.png")).is_err());
}

#[test]
fn degenerate_data_does_not_panic() {
    let dir = tempfile::tempdir().unwrap();
    let one = |x: Vec<f64>, y: Vec<f64>| LinePlot {
        title: "edge".into(),
        series: vec![Series { label: "s".into(), x, y, band: None }],
        ..Default::default()
    };
    let cases = [
        one(vec![5.0], vec![0.3]),
        one(vec![1.0, 2.0, 3.0], vec![2.0, 2.0, 2.0]),
        one(vec![0.0, 1.0], vec![-1e300, 1e300]),
        one(vec![1.0, 2.0], vec![1.0, 1.0 + 1e-15]),
        one(vec![f64::NAN, 1.0, 2.0, f64::INFINITY], vec![1.0, f64::NAN, 3.0, 4.0]),
    ];
    for (i, p) in cases.iter().enumerate() {
        for log in [false, true] {
            let p = LinePlot { y_log: log, x_log: log, ..p.clone() };
            let path = out(&dir, &format!("edge{i}-{log}.png"));
            match line_plot(&p, &path) {
                Ok(()) => {
                    assert_png(&path);
                }
                Err(e) => assert!(e.to_string().contains("no plottable points"), "{e}"),
            }
        }
    }
}
