//! The `icl` probe: is the trained one-layer linear self-attention one step of (preconditioned)
//! gradient descent? Metrics from [`tinylab_train::icl::analyse`]; heat maps of `W_KQ`, `W_PV`
//! and of the implied vs optimal preconditioner.

use anyhow::{bail, Context, Result};
use serde_json::json;
use tinylab_plot::{Colormap, Heatmap};
use tinylab_tasks::{LinearRegression, TaskConfig};
use toml::Table;

use crate::probe_stage::{write_json, ProbeContext};

impl ProbeContext {
    /// Runs the analysis on `samples` fresh sequences (default 2048) of the eval set named in
    /// `opts` (or the training task).
    pub(crate) fn icl(&self, opts: &Table) -> Result<Vec<(String, f64)>> {
        let n = opts.get("samples").and_then(|v| v.as_integer()).unwrap_or(2048).max(1) as usize;
        let cfg = match opts.get("eval").and_then(|v| v.as_str()) {
            Some(e) => &self.exp.eval.iter().find(|s| s.name == e).context("validated eval name")?.task,
            None => &self.exp.task,
        };
        let TaskConfig::LinearRegression(c) = cfg else {
            bail!("probe `icl` needs task kind = \"linear_regression\"");
        };
        let task = LinearRegression::new(c.clone())?;
        let batch =
            tinylab_tasks::Task::generate(&task, &mut tinylab_train::data::rng(self.exp.seed, 7_000), n);
        let r = tinylab_train::icl::analyse(&self.model, &task, &batch)?;
        let f = r.f;
        let d = f - 1;
        let rows = |m: &[f64], w: usize| -> Vec<Vec<f64>> { m.chunks(w).map(|c| c.to_vec()).collect() };
        let labels: Vec<String> = (0..d).map(|j| format!("x{j}")).chain(["y".to_string()]).collect();
        let panel = |title: &str, values: Vec<Vec<f64>>, labels: &[String]| Heatmap {
            title: title.into(),
            values,
            row_labels: labels.to_vec(),
            col_labels: labels.to_vec(),
            x_label: String::new(),
            y_label: String::new(),
            colormap: Colormap::Diverging,
        };
        let gamma_opt: Vec<f64> =
            (0..d * d).map(|i| if i / d == i % d { r.gamma_opt[i / d] } else { 0.0 }).collect();
        let xl = &labels[..d];
        tinylab_plot::small_multiples(
            &format!("{}: W_KQ and W_PV (step {})", self.exp.name, self.step),
            &[panel("W_KQ", rows(&r.w_kq, f), &labels), panel("W_PV", rows(&r.w_pv, f), &labels)],
            2,
            &self.plot_file("icl_weights.png"),
        )?;
        tinylab_plot::small_multiples(
            &format!("{}: implied vs optimal preconditioner", self.exp.name),
            &[
                panel("Γ model = sNpA", rows(&r.gamma_model, d), xl),
                panel("Γ optimal", rows(&gamma_opt, d), xl),
            ],
            2,
            &self.plot_file("icl_preconditioner.png"),
        )?;
        let metrics: serde_json::Map<String, serde_json::Value> =
            r.metrics.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        write_json(
            &self.probe_file("icl.json"),
            &json!({"step": self.step, "samples": n, "metrics": metrics, "W_KQ": rows(&r.w_kq, f),
                "W_PV": rows(&r.w_pv, f), "gamma_model": rows(&r.gamma_model, d), "gamma_opt": r.gamma_opt}),
        )?;
        Ok(r.metrics)
    }
}
