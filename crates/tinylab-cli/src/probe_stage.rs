//! The probe stage: rebuilds a run's model from `config.toml` + its last checkpoint, runs the
//! `[[probe]]` analyses, writes their tables under `probes/` and figures under `plots/`, and
//! returns their scalars as metrics `probe.<what>.<name>` for the claim checks.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device};
use ndarray::Array2;
use serde_json::json;
use tinylab_model::{Model, WeightsKind};
use tinylab_plot::{BarPlot, Colormap, Heatmap};
use tinylab_probe::circuits;
use tinylab_probe::samples::Samples;
use tinylab_tasks::Task;
use tinylab_train::experiment::ProbeSpec;
use tinylab_train::{checkpoint, Experiment, RunDir};
use toml::Table;

/// Probe kinds and the options each accepts.
pub const PROBES: &[(&str, &[&str], &str)] = &[
    ("spectrum", &[], "singular values, nuclear norm, effective rank of every QK and OV circuit"),
    (
        "circuits",
        &["tokens"],
        "QK and OV circuits in the token basis (heat maps, safetensors); Q/K/V composition",
    ),
    ("conv", &[], "CAT filter taps per lag and the share of each lag in the projected filter"),
    ("attention", &["eval", "samples"], "attention maps; mass on the position after the query's match"),
    ("logit_lens", &["eval", "samples"], "accuracy of each layer's residual read through the unembedding"),
    (
        "ablate",
        &["eval", "samples"],
        "accuracy drop when each head is zero-ablated or loses its top OV direction",
    ),
    (
        "linear_probe",
        &["eval", "samples", "hook"],
        "logistic probes from the residual stream to the target token",
    ),
    (
        "layer_probe",
        &["eval", "samples"],
        "per-layer probes of the task's position labels (parity: tree levels) at every stage end; attention to tree children",
    ),
    ("spectrum_history", &[], "nuclear norm of every circuit at every saved checkpoint"),
    (
        "icl",
        &["eval", "samples"],
        "one-layer LSA vs one-step GD: W_KQ ≈ c·I / Γ, W_PV on (y,y), step, sensitivity",
    ),
    (
        "ov_blocks",
        &["blocks", "query"],
        "blocks of the token-basis OV circuit (e.g. name:city), optionally scaled by a query's scores, with diagonal margins",
    ),
];

/// Checks a probe entry's kind and option names (before training starts).
pub fn validate(spec: &ProbeSpec, exp: &Experiment) -> std::result::Result<(), String> {
    let Some((_, opts, _)) = PROBES.iter().find(|p| p.0 == spec.what) else {
        let names: Vec<&str> = PROBES.iter().map(|p| p.0).collect();
        return Err(format!("unknown probe `{}`; allowed: {}", spec.what, names.join(", ")));
    };
    for k in spec.options.keys() {
        if !opts.contains(&k.as_str()) {
            return Err(format!("probe `{}` has no option `{k}`; allowed: {}", spec.what, opts.join(", ")));
        }
    }
    if let Some(e) = spec.options.get("eval").and_then(|v| v.as_str()) {
        if !exp.eval.iter().any(|s| s.name == e) {
            return Err(format!("probe `{}`: no [[eval]] named `{e}`", spec.what));
        }
    }
    Ok(())
}

/// A run directory with its model rebuilt at the last checkpoint.
pub struct ProbeContext {
    /// The run directory.
    pub dir: RunDir,
    /// The experiment as resolved in `config.toml`.
    pub exp: Experiment,
    /// The model at `step`.
    pub model: Model,
    /// Checkpoint step.
    pub step: usize,
}

impl ProbeContext {
    /// Loads `config.toml` and the newest checkpoint of a run directory.
    pub fn load(dir: &Path) -> Result<Self> {
        let rd = RunDir::new(dir);
        let text = std::fs::read_to_string(rd.config())
            .with_context(|| format!("{} is not a run directory", dir.display()))?;
        let exp = Experiment::from_str(&text, &rd.config().display().to_string(), "run", &[], None)?;
        let mut model = exp.build_model(&Device::Cpu)?;
        let (step, path) =
            rd.last_checkpoint().with_context(|| format!("{} has no checkpoint", dir.display()))?;
        let (tensors, _) = checkpoint::load(&path)?;
        model.load_weights(&tensors)?;
        std::fs::create_dir_all(rd.root.join("probes"))?;
        std::fs::create_dir_all(rd.root.join("plots"))?;
        Ok(Self { dir: rd, exp, model, step })
    }

    pub(crate) fn probe_file(&self, name: &str) -> PathBuf {
        self.dir.root.join("probes").join(name)
    }

    pub(crate) fn plot_file(&self, name: &str) -> PathBuf {
        self.dir.root.join("plots").join(name)
    }

    /// The task of the eval set named in `opts` (or the training task).
    pub(crate) fn task_config(&self, opts: &Table) -> Result<&tinylab_tasks::TaskConfig> {
        Ok(match opts.get("eval").and_then(|v| v.as_str()) {
            Some(e) => &self.exp.eval.iter().find(|s| s.name == e).context("validated eval name")?.task,
            None => &self.exp.task,
        })
    }

    /// Samples from the eval set named in `opts` (or the training task), seeded by the run.
    pub(crate) fn samples(&self, opts: &Table) -> Result<(Box<dyn Task>, Samples)> {
        let n = opts.get("samples").and_then(|v| v.as_integer()).unwrap_or(256).max(1) as usize;
        let cfg = self.task_config(opts)?;
        let task = cfg.build()?;
        let batch = task.generate(&mut tinylab_train::data::rng(self.exp.seed, 7_000), n);
        Ok((task, Samples::new(batch, &self.model)?))
    }

    /// Runs one probe; returns its metrics keyed `probe.<what>.<name>`.
    pub fn run(&self, spec: &ProbeSpec) -> Result<BTreeMap<String, f64>> {
        let metrics = match spec.what.as_str() {
            "spectrum" => self.spectrum()?,
            "circuits" => self.circuits(&spec.options)?,
            "conv" => self.conv()?,
            "attention" => self.attention(&spec.options)?,
            "logit_lens" => self.logit_lens(&spec.options)?,
            "ablate" => self.ablate(&spec.options)?,
            "linear_probe" => self.linear_probe(&spec.options)?,
            "spectrum_history" => self.spectrum_history()?,
            "ov_blocks" => self.ov_blocks(&spec.options)?,
            "icl" => self.icl(&spec.options)?,
            "layer_probe" => self.layer_probe(&spec.options)?,
            other => bail!("unknown probe `{other}`"),
        };
        let out: BTreeMap<String, f64> =
            metrics.into_iter().map(|(k, v)| (format!("probe.{}.{k}", spec.what), v)).collect();
        write_json(
            &self.probe_file(&format!("{}.metrics.json", spec.what)),
            &json!({"step": self.step, "metrics": out}),
        )?;
        Ok(out)
    }

    pub(crate) fn heads(&self) -> Vec<(usize, usize)> {
        let c = self.model.config();
        (0..c.n_layers).flat_map(|l| (0..c.n_heads).map(move |h| (l, h))).collect()
    }

    fn spectrum(&self) -> Result<Vec<(String, f64)>> {
        let mut metrics = Vec::new();
        let mut table = Vec::new();
        let mut spectra = Vec::new();
        for (l, h) in self.heads() {
            for (kind, m) in [
                ("qk", circuits::qk_circuit(&self.model, l, h)?),
                ("ov", circuits::ov_circuit(&self.model, l, h)?),
            ] {
                let s = m.singular_values()?.to_vec();
                let nuc: f64 = s.iter().sum();
                let er = m.effective_rank()?;
                metrics.push((format!("l{l}h{h}_{kind}_nuclear"), nuc));
                metrics.push((format!("l{l}h{h}_{kind}_eff_rank"), er));
                table.push(json!({"layer": l, "head": h, "circuit": kind, "singular_values": s, "nuclear_norm": nuc, "effective_rank": er}));
                spectra.push((format!("L{l}H{h} {}", kind.to_uppercase()), s));
            }
        }
        write_json(&self.probe_file("spectrum.json"), &json!({"step": self.step, "circuits": table}))?;
        tinylab_plot::spectrum_plot(
            &format!("{}: singular values (step {})", self.exp.name, self.step),
            &spectra,
            true,
            &self.plot_file("spectrum.png"),
        )?;
        Ok(metrics)
    }

    fn circuits(&self, opts: &Table) -> Result<Vec<(String, f64)>> {
        let v = self.model.config().vocab_size;
        let n = opts.get("tokens").and_then(|x| x.as_integer()).unwrap_or(48).clamp(1, v as i64) as usize;
        let task = self.exp.task.build()?;
        let labels: Vec<String> = (0..n as u32).map(|t| task.token_name(t)).collect();
        let (mut qk_panels, mut ov_panels) = (Vec::new(), Vec::new());
        let mut tensors = Vec::new();
        for (l, h) in self.heads() {
            let qk = circuits::full_qk_circuit(&self.model, l, h)?.dense();
            let ov = circuits::full_ov_circuit(&self.model, l, h)?.dense();
            tensors.push((format!("blocks.{l}.attn.full_QK.{h}"), array_tensor(&qk)?));
            tensors.push((format!("blocks.{l}.attn.full_OV.{h}"), array_tensor(&ov)?));
            for (m, panels, what) in [(&qk, &mut qk_panels, "QK"), (&ov, &mut ov_panels, "OV")] {
                let (xl, yl) = if what == "QK" {
                    ("key token", "query token")
                } else {
                    ("output logit", "attended token")
                };
                panels.push(Heatmap {
                    title: format!("L{l}H{h} {what}"),
                    values: top_left(m, n),
                    row_labels: labels.clone(),
                    col_labels: labels.clone(),
                    x_label: xl.into(),
                    y_label: yl.into(),
                    colormap: Colormap::Diverging,
                });
            }
        }
        checkpoint::save_atomic(&self.probe_file("circuits.safetensors"), &tensors, &BTreeMap::new())?;
        let mut metrics = Vec::new();
        if self.model.config().n_layers > 1 {
            // Q-, K-, V-composition of every earlier head into every later one.
            let mut comp = serde_json::Map::new();
            for kind in tinylab_probe::CompositionKind::ALL {
                let name = format!("{kind:?}").to_lowercase();
                let scores = tinylab_probe::all_composition_scores(&self.model, kind)?;
                let mut rows = Vec::new();
                for ((l1, h1, l2, h2), v) in scores.indexed_iter() {
                    if l1 < l2 {
                        rows.push(json!({"sender": [l1, h1], "receiver": [l2, h2], "score": v}));
                    }
                }
                metrics.push((format!("max_{name}_composition"), scores.iter().copied().fold(0.0, f64::max)));
                comp.insert(name, serde_json::Value::Array(rows));
            }
            write_json(&self.probe_file("composition.json"), &json!({"step": self.step, "scores": comp}))?;
        }
        let cols = self.model.config().n_heads;
        tinylab_plot::small_multiples(
            &format!("{}: QK circuit E·W_QK·Eᵀ", self.exp.name),
            &qk_panels,
            cols,
            &self.plot_file("circuits_qk.png"),
        )?;
        tinylab_plot::small_multiples(
            &format!("{}: OV circuit E·W_OV·W_U", self.exp.name),
            &ov_panels,
            cols,
            &self.plot_file("circuits_ov.png"),
        )?;
        Ok(metrics)
    }

    fn conv(&self) -> Result<Vec<(String, f64)>> {
        let mut metrics = Vec::new();
        let mut table = Vec::new();
        for l in 0..self.model.config().n_layers {
            let filters = circuits::conv_filters(&self.model, l)?;
            if filters.is_empty() {
                bail!("layer {l} has no CAT convolution (set model.conv_q/conv_k/conv_v)");
            }
            let mut series = Vec::new();
            let k = filters[0].1.nrows();
            let shares = self.conv_lag_shares(l)?;
            let mut dominant = BTreeMap::new();
            for ((path, taps), (_, share)) in filters.iter().zip(&shares) {
                let p = path.trim_start_matches("conv_");
                for (i, s) in share.iter().enumerate() {
                    metrics.push((format!("l{l}_{p}_lag{i}_share"), *s));
                }
                let (lag, top) = argmax(share);
                metrics.push((format!("l{l}_{p}_dominant_lag"), lag as f64));
                metrics.push((format!("l{l}_{p}_dominant_share"), top));
                dominant.insert(p.to_string(), lag as f64);
                let summary = circuits::conv_lag_summary(taps);
                series.push((
                    format!("{p} (mean |tap|)"),
                    summary.iter().map(|s| s.mean_abs).collect::<Vec<_>>(),
                ));
                series.push((format!("{p} (share after W)"), share.clone()));
                table.push(json!({"layer": l, "path": p, "taps": taps.rows().into_iter().map(|r| r.to_vec()).collect::<Vec<_>>(),
                    "mean_tap": summary.iter().map(|s| s.mean).collect::<Vec<_>>(),
                    "mean_abs_tap": summary.iter().map(|s| s.mean_abs).collect::<Vec<_>>(),
                    "projected_share": share}));
            }
            if let (Some(k), Some(v)) = (dominant.get("k"), dominant.get("v")) {
                metrics.push((format!("l{l}_kv_lag_gap"), k - v));
            }
            tinylab_plot::bar_plot(
                &BarPlot {
                    title: format!("{}: CAT filters, layer {l} (step {})", self.exp.name, self.step),
                    x_label: "lag i (tap multiplies x_{t-i})".into(),
                    y_label: "value".into(),
                    groups: (0..k).map(|i| format!("lag {i}")).collect(),
                    series,
                },
                &self.plot_file(&format!("conv_layer{l}.png")),
            )?;
        }
        write_json(&self.probe_file("conv.json"), &json!({"step": self.step, "filters": table}))?;
        Ok(metrics)
    }

    /// Per CAT path of layer `l`, the share of each lag in the projected filter energy
    /// `‖diag(F_i) W‖²_F / Σ_j ‖diag(F_j) W‖²_F` (W = the matrix the path feeds).
    pub(crate) fn conv_lag_shares(&self, l: usize) -> Result<Vec<(String, Vec<f64>)>> {
        let mut out = Vec::new();
        for (path, taps) in circuits::conv_filters(&self.model, l)? {
            let proj = self.path_projection(l, &path)?;
            let energy: Vec<f64> = (0..taps.nrows())
                .map(|i| {
                    let scaled = &proj * &taps.row(i).insert_axis(ndarray::Axis(1));
                    scaled.iter().map(|x| x * x).sum::<f64>()
                })
                .collect();
            let total: f64 = energy.iter().sum::<f64>().max(f64::MIN_POSITIVE);
            out.push((path, energy.iter().map(|e| e / total).collect()));
        }
        Ok(out)
    }

    /// The matrix a CAT path feeds, `[d, ·]`: W_Q / W_K / W_V of all heads side by side
    /// (factorized), or W_QK / W_QKᵀ / W_OV (combined).
    fn path_projection(&self, l: usize, path: &str) -> Result<Array2<f64>> {
        let p = self.model.params();
        let (name, transpose) = match (self.model.config().weights, path) {
            (WeightsKind::Factorized, "conv_q") => ("W_Q", false),
            (WeightsKind::Factorized, "conv_k") => ("W_K", false),
            (WeightsKind::Factorized, _) => ("W_V", false),
            (WeightsKind::Combined, "conv_q") => ("W_QK", false),
            (WeightsKind::Combined, "conv_k") => ("W_QK", true),
            (WeightsKind::Combined, _) => ("W_OV", false),
        };
        let w = p.get(&format!("blocks.{l}.attn.{name}")); // [H, d, e]
        let w = if transpose { w.transpose(1, 2)? } else { w.clone() };
        let (h, d, e) = w.dims3()?;
        let wide = w.transpose(0, 1)?.contiguous()?.reshape((d, h * e))?;
        Ok(tinylab_probe::convert::tensor_to_array2(&wide)?)
    }
}

/// `(index, value)` of the largest entry.
pub fn argmax(v: &[f64]) -> (usize, f64) {
    v.iter().copied().enumerate().fold((0, f64::NEG_INFINITY), |b, (i, x)| if x > b.1 { (i, x) } else { b })
}

/// The top-left `n × n` block as rows.
fn top_left(m: &Array2<f64>, n: usize) -> Vec<Vec<f64>> {
    (0..n.min(m.nrows())).map(|i| (0..n.min(m.ncols())).map(|j| m[[i, j]]).collect()).collect()
}

fn array_tensor(a: &Array2<f64>) -> Result<candle_core::Tensor> {
    Ok(tinylab_probe::convert::array2_to_tensor(a, &Device::Cpu, DType::F32)?)
}

/// Writes pretty JSON atomically.
pub fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    tinylab_train::rundir::write_atomic(path, &serde_json::to_vec_pretty(v)?)?;
    Ok(())
}
