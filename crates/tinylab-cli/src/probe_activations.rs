//! Probes that run the model on task samples: attention maps, logit lens, head ablation.

use anyhow::Result;
use tinylab_plot::{Colormap, Heatmap, LinePlot, Series};
use tinylab_probe::{ablate, attention, logit_lens};
use toml::Table;

use crate::probe_stage::{argmax, write_json, ProbeContext};

impl ProbeContext {
    /// Attention maps of the first sample (layers × heads) and, per head, the mean mass a
    /// labelled query puts on the position right after an earlier copy of its own token
    /// (`mass_after_match`), and on the retrieval slot `copy + s` where `s` is the dominant lag
    /// of the layer's CAT key filter (`mass_on_retrieval_slot`; `s = 1` without a key filter):
    /// a key filter of lag `s` writes the key into the position `s` after it.
    pub(crate) fn attention(&self, opts: &Table) -> Result<Vec<(String, f64)>> {
        let (task, samples) = self.samples(opts)?;
        let (mass, n) = attention::mass_after_match(&self.model, &samples, 1)?;
        let mut metrics = Vec::new();
        let mut best: f64 = 0.0;
        for (l, heads) in mass.iter().enumerate() {
            let lag =
                self.conv_lag_shares(l)?.into_iter().find(|(p, _)| p == "conv_k").map(|(_, s)| argmax(&s).0);
            let slot = match lag {
                Some(s) if s >= 1 => attention::mass_after_match(&self.model, &samples, s)?.0[l].clone(),
                _ => heads.clone(),
            };
            for (h, m) in heads.iter().enumerate() {
                metrics.push((format!("l{l}h{h}_mass_after_match"), *m));
                metrics.push((format!("l{l}h{h}_mass_on_retrieval_slot"), slot[h]));
                best = best.max(slot[h]);
            }
        }
        metrics.push(("max_mass_on_retrieval_slot".into(), best));
        metrics.push(("queries_with_match".into(), n as f64));
        let pats = attention::patterns(&self.model, &samples)?;
        let t = samples.batch.seq_len;
        let shown = t.min(64);
        let labels: Vec<String> =
            samples.batch.input_row(0)[..shown].iter().map(|&x| task.token_name(x)).collect();
        let mut panels = Vec::new();
        for (l, p) in pats.iter().enumerate() {
            for h in 0..p.dim(1)? {
                let m = p.get(0)?.get(h)?.to_dtype(candle_core::DType::F64)?.to_vec2::<f64>()?;
                panels.push(Heatmap {
                    title: format!("L{l}H{h}"),
                    values: m[..shown].iter().map(|r| r[..shown].to_vec()).collect(),
                    row_labels: labels.clone(),
                    col_labels: labels.clone(),
                    x_label: "key position".into(),
                    y_label: "query position".into(),
                    colormap: if self.model.config().attention == tinylab_model::AttentionKind::Softmax {
                        Colormap::Sequential
                    } else {
                        Colormap::Diverging
                    },
                });
            }
        }
        let title = format!("{}: attention, sample 0 (step {})", self.exp.name, self.step);
        tinylab_plot::small_multiples(
            &title,
            &panels,
            self.model.config().n_heads,
            &self.plot_file("attention.png"),
        )?;
        write_json(
            &self.probe_file("attention.json"),
            &serde_json::json!({"step": self.step, "mass_after_match": mass, "queries": n}),
        )?;
        Ok(metrics)
    }

    /// Accuracy of the residual stream after the embedding and after each block, read through
    /// the final norm and unembedding.
    pub(crate) fn logit_lens(&self, opts: &Table) -> Result<Vec<(String, f64)>> {
        let (_, samples) = self.samples(opts)?;
        let accs = logit_lens::logit_lens_accuracy(&self.model, &samples)?;
        let names: Vec<String> = std::iter::once("embed".to_string())
            .chain((0..accs.len() - 1).map(|l| format!("layer{l}")))
            .collect();
        let plot = LinePlot {
            title: format!("{}: logit lens (step {})", self.exp.name, self.step),
            x_label: "residual after (0 = embedding, l+1 = block l)".into(),
            y_label: "accuracy at labelled positions".into(),
            x_log: false,
            y_log: false,
            series: vec![Series {
                label: "accuracy".into(),
                x: (0..accs.len()).map(|i| i as f64).collect(),
                y: accs.clone(),
                band: None,
            }],
            vlines: vec![],
        };
        tinylab_plot::line_plot(&plot, &self.plot_file("logit_lens.png"))?;
        write_json(
            &self.probe_file("logit_lens.json"),
            &serde_json::json!({"step": self.step, "points": names, "accuracy": accs}),
        )?;
        Ok(names.into_iter().zip(accs).map(|(n, a)| (format!("{n}_acc"), a)).collect())
    }

    /// Accuracy before and after zero-ablating each head, and after removing the top singular
    /// direction of each head's OV circuit (`OV ← OV (I − v₁v₁ᵀ)`).
    pub(crate) fn ablate(&self, opts: &Table) -> Result<Vec<(String, f64)>> {
        let (_, samples) = self.samples(opts)?;
        let base = samples.accuracy(&self.model)?;
        let mut metrics = vec![("base_acc".to_string(), base)];
        let mut rows = Vec::new();
        for (l, h) in self.heads() {
            let acc = samples.accuracy(&ablate::zero_head(&self.model, l, h)?)?;
            metrics.push((format!("l{l}h{h}_zero_acc"), acc));
            metrics.push((format!("l{l}h{h}_zero_drop"), base - acc));
            rows.push(serde_json::json!({"layer": l, "head": h, "ablation": "zero", "acc": acc, "drop": base - acc}));
            // Remove the OV circuit's top singular direction (in output space) from the head.
            let svd = tinylab_probe::circuits::ov_circuit(&self.model, l, h)?.svd()?;
            if svd.s.len() > 1 {
                let v1 = svd.vt.row(0).to_owned().insert_axis(ndarray::Axis(0));
                let dirs = tinylab_probe::convert::array2_to_tensor(
                    &v1,
                    self.model.device(),
                    candle_core::DType::F32,
                )?;
                let acc1 = samples.accuracy(&ablate::remove_output_directions(&self.model, l, h, &dirs)?)?;
                metrics.push((format!("l{l}h{h}_top_sv_drop"), base - acc1));
                rows.push(serde_json::json!({"layer": l, "head": h, "ablation": "top OV singular direction",
                    "sigma": svd.s[0], "acc": acc1, "drop": base - acc1}));
            }
        }
        write_json(
            &self.probe_file("ablate.json"),
            &serde_json::json!({"step": self.step, "base_acc": base, "heads": rows}),
        )?;
        Ok(metrics)
    }

    /// Logistic probes from the residual stream at labelled positions (after the embedding and
    /// after each block, or the `hook` named) to the target token, on a seeded 75/25 split.
    pub(crate) fn linear_probe(&self, opts: &Table) -> Result<Vec<(String, f64)>> {
        use tinylab_model::{ForwardOptions, HookPoint, HookSet};
        let (_, samples) = self.samples(opts)?;
        let layers = self.model.config().n_layers;
        let points: Vec<HookPoint> = match opts.get("hook").and_then(|v| v.as_str()) {
            Some(h) => vec![h.parse().map_err(anyhow::Error::msg)?],
            None => std::iter::once(HookPoint::Embed).chain((0..layers).map(HookPoint::ResidPost)).collect(),
        };
        let hooks = HookSet::of(points.iter().copied());
        let out =
            self.model.forward(&samples.tokens, ForwardOptions { select: None, hooks: Some(&hooks) })?;
        let mut classes: Vec<u32> = samples.targets.clone();
        classes.sort_unstable();
        classes.dedup();
        let labels: Vec<usize> =
            samples.targets.iter().map(|t| classes.binary_search(t).expect("present")).collect();
        let split = tinylab_probe::linear_probe::train_test_split(labels.len(), 0.25, self.exp.seed)?;
        let mut metrics = Vec::new();
        let mut rows = Vec::new();
        for p in points {
            let act =
                out.cache.get(p).ok_or_else(|| anyhow::anyhow!("hook {p} records nothing in this model"))?;
            let d = *act.dims().last().unwrap_or(&1);
            let x = act.reshape((act.elem_count() / d, d))?.index_select(&samples.select, 0)?;
            let x = tinylab_probe::convert::tensor_to_array2(&x)?;
            let cfg = tinylab_probe::LogisticConfig::default();
            let r = tinylab_probe::logistic_probe(&x, &labels, classes.len(), &cfg, &split)?;
            let name = p.to_string().replace('.', "_");
            metrics.push((format!("{name}_test_acc"), r.test_accuracy));
            metrics.push((format!("{name}_train_acc"), r.train_accuracy));
            rows.push(serde_json::json!({"hook": p.to_string(), "train_acc": r.train_accuracy, "test_acc": r.test_accuracy,
                "majority_baseline": r.majority_baseline, "n_train": r.n_train, "n_test": r.n_test}));
        }
        write_json(
            &self.probe_file("linear_probe.json"),
            &serde_json::json!({"step": self.step, "label": "target token", "probes": rows}),
        )?;
        Ok(metrics)
    }
}
