//! Layer-wise probes of per-position ground truth (`Task::position_labels`, e.g. the XOR
//! value of each parity-tree level at its nodes' positions): which layer's residual stream
//! decodes which label, at the end of every curriculum stage; for parity also how much each
//! layer's attention at a node's position goes to the node's two children.

use anyhow::{Context, Result};
use candle_core::DType;
use serde_json::json;
use tinylab_model::{ForwardOptions, HookPoint, HookSet, Model};
use tinylab_plot::{Colormap, Heatmap};
use tinylab_probe::samples::Samples;
use tinylab_tasks::{Parity, ParityNode, TaskConfig, IGNORE};
use tinylab_train::checkpoint;
use toml::Table;

use crate::probe_stage::{write_json, ProbeContext};

/// Probe accuracy of one label at one layer (`layer` 0 = embeddings, `l` = after block `l`,
/// counted from 1).
#[derive(Clone)]
struct Cell {
    label: String,
    layer: usize,
    test_acc: f64,
    baseline: f64,
}

impl ProbeContext {
    /// `what = "layer_probe"`: logistic probes from the embeddings and from the residual after
    /// every block, at the positions each label of the task's `position_labels` covers, to
    /// that label (seeded 75/25 split of `samples` sequences of the eval set `eval`). Run on
    /// the final weights (metrics `<label>_l<layer>_acc`, `l0` = embeddings) and on the saved
    /// end-of-stage weights of a curriculum (figure `plots/layer_probe.png`: stage × layer
    /// grid per label), and `<label>_jump_layer`: the layer whose block raises the probe
    /// accuracy most over the layer before (parameter-free "where the label appears"). For a
    /// parity task also `level<ℓ>_l<layer>_child_mass`: mean attention
    /// (mean over heads) from the position predicting a level-ℓ node to its two children's
    /// token slots, and `…_child_pred_mass` to the positions predicting the children (where a
    /// zero-filled child is computed; the same as the slots at level 1, whose children are bits);
    /// for levels ℓ ≥ 3 `…_level1_mass`, the same to its 2^(ℓ−1) level-1 descendants' probe
    /// positions (a node that skips the levels between).
    /// With several labels, `jump_layers_increasing`: 1 if each label's jump layer is strictly
    /// deeper than the one before (in the task's label order: tree levels bottom-up), else 0.
    pub(crate) fn layer_probe(&self, opts: &Table) -> Result<Vec<(String, f64)>> {
        let (task, samples) = self.samples(opts)?;
        let labels = task.position_labels(&samples.batch);
        anyhow::ensure!(!labels.is_empty(), "task `{}` has no position labels to probe", task.name());
        let mut snapshots: Vec<(String, Model)> = Vec::new();
        for (i, path) in self.dir.list_stage_checkpoints() {
            let (tensors, meta) = checkpoint::load(&path)?;
            let mut m = self.model.clone_fresh()?;
            m.load_weights(&tensors)?;
            let name = meta.get("stage_name").cloned().unwrap_or_else(|| i.to_string());
            snapshots.push((format!("{i}: {name}"), m));
        }
        let final_cells = probe_cells(&self.model, &samples, &labels, self.exp.seed)?;
        let mut grid_rows = Vec::new();
        for (name, m) in &snapshots {
            grid_rows.push((name.clone(), probe_cells(m, &samples, &labels, self.exp.seed)?));
        }
        if snapshots.is_empty() {
            grid_rows.push((format!("final (step {})", self.step), final_cells.clone()));
        }
        let mut metrics: Vec<(String, f64)> =
            final_cells.iter().map(|c| (format!("{}_l{}_acc", c.label, c.layer), c.test_acc)).collect();
        let mut jumps = Vec::new();
        for (label, _) in &labels {
            let acc: Vec<f64> =
                final_cells.iter().filter(|c| &c.label == label).map(|c| c.test_acc).collect();
            jumps.push(jump_layer(&acc));
            metrics.push((format!("{label}_jump_layer"), jumps[jumps.len() - 1] as f64));
        }
        if labels.len() > 1 {
            metrics.push(("jump_layers_increasing".into(), strictly_increasing(&jumps) as u8 as f64));
        }
        let child = match self.task_config(opts)? {
            TaskConfig::Parity(cfg) => child_mass(&self.model, &samples, &Parity::new(cfg.clone())?)?,
            _ => Vec::new(),
        };
        metrics.extend(child.iter().cloned());
        self.plot_grid(&labels, &grid_rows)?;
        let json_rows: Vec<serde_json::Value> = grid_rows
            .iter()
            .flat_map(|(stage, cells)| {
                cells.iter().map(move |c| {
                    json!({"stage": stage, "label": c.label, "layer": c.layer, "test_acc": c.test_acc, "majority_baseline": c.baseline})
                })
            })
            .collect();
        write_json(
            &self.probe_file("layer_probe.json"),
            &json!({"step": self.step, "grid": json_rows, "child_mass": child.into_iter().collect::<std::collections::BTreeMap<_, _>>()}),
        )?;
        Ok(metrics)
    }

    fn plot_grid(&self, labels: &[(String, Vec<i32>)], rows: &[(String, Vec<Cell>)]) -> Result<()> {
        let layers = self.model.config().n_layers + 1;
        let panels: Vec<Heatmap> = labels
            .iter()
            .map(|(label, _)| Heatmap {
                title: format!("probe accuracy of {label}"),
                values: rows
                    .iter()
                    .map(|(_, cells)| {
                        (0..layers)
                            .map(|l| {
                                cells
                                    .iter()
                                    .find(|c| &c.label == label && c.layer == l)
                                    .map_or(f64::NAN, |c| c.test_acc)
                            })
                            .collect()
                    })
                    .collect(),
                row_labels: rows.iter().map(|(s, _)| s.clone()).collect(),
                col_labels: (0..layers)
                    .map(|l| if l == 0 { "embed".into() } else { format!("layer {l}") })
                    .collect(),
                x_label: "residual stream after".into(),
                y_label: "end of stage".into(),
                colormap: Colormap::Sequential,
            })
            .collect();
        let title = format!("{}: layer-wise probes (stage × layer)", self.exp.name);
        tinylab_plot::small_multiples(&title, &panels, panels.len(), &self.plot_file("layer_probe.png"))?;
        Ok(())
    }
}

/// Whether every element is larger than the one before.
fn strictly_increasing(v: &[usize]) -> bool {
    v.windows(2).all(|w| w[0] < w[1])
}

/// The layer `l ≥ 1` with the largest gain `acc[l] − acc[l − 1]` (`acc[0]`: embeddings).
fn jump_layer(acc: &[f64]) -> usize {
    (1..acc.len()).max_by(|&a, &b| (acc[a] - acc[a - 1]).total_cmp(&(acc[b] - acc[b - 1]))).unwrap_or(0)
}

/// Probe accuracy of every label at every layer of `model`.
fn probe_cells(
    model: &Model,
    samples: &Samples,
    labels: &[(String, Vec<i32>)],
    seed: u64,
) -> Result<Vec<Cell>> {
    let layers = model.config().n_layers;
    let points: Vec<HookPoint> =
        std::iter::once(HookPoint::Embed).chain((0..layers).map(HookPoint::ResidPost)).collect();
    let hooks = HookSet::of(points.iter().copied());
    let out = model.forward(&samples.tokens, ForwardOptions { select: None, hooks: Some(&hooks) })?;
    let mut cells = Vec::new();
    for (layer, p) in points.iter().enumerate() {
        // layer 0 = embeddings, layer l = after block l (counted from 1)
        let act = out.cache.get(*p).with_context(|| format!("hook {p} records nothing"))?;
        let d = *act.dims().last().unwrap_or(&1);
        let flat = act.reshape((act.elem_count() / d, d))?.to_dtype(DType::F64)?;
        for (label, values) in labels {
            let idx: Vec<u32> =
                (0..values.len()).filter(|&i| values[i] != IGNORE).map(|i| i as u32).collect();
            let sel = candle_core::Tensor::from_vec(idx.clone(), idx.len(), flat.device())?;
            let x = tinylab_probe::convert::tensor_to_array2(&flat.index_select(&sel, 0)?)?;
            let mut classes: Vec<i32> = idx.iter().map(|&i| values[i as usize]).collect();
            classes.sort_unstable();
            classes.dedup();
            let y: Vec<usize> =
                idx.iter().map(|&i| classes.binary_search(&values[i as usize]).expect("present")).collect();
            let split = tinylab_probe::linear_probe::train_test_split(y.len(), 0.25, seed)?;
            let cfg = tinylab_probe::LogisticConfig::default();
            let r = tinylab_probe::logistic_probe(&x, &y, classes.len().max(2), &cfg, &split)?;
            cells.push(Cell {
                label: label.clone(),
                layer,
                test_acc: r.test_accuracy,
                baseline: r.majority_baseline,
            });
        }
    }
    Ok(cells)
}

/// Per level and layer, the mean attention (averaged over heads and sequences) from each
/// node's probe position to its two children, summed over the two children: at the
/// children's slots (`child_mass`) and at the positions predicting them (`child_pred_mass`).
fn child_mass(model: &Model, samples: &Samples, parity: &Parity) -> Result<Vec<(String, f64)>> {
    let pats = tinylab_probe::attention::patterns(model, samples)?;
    let mut out = Vec::new();
    for (l, p) in pats.iter().enumerate() {
        let p = p.to_dtype(DType::F64)?.mean(1)?; // [B, T, T], mean over heads
        let m = p.mean(0)?.to_vec2::<f64>()?; // mean over sequences: [T, T]
        for level in 1..=parity.num_levels() {
            let nodes: Vec<_> = parity.nodes().iter().filter(|n| n.level == level).collect();
            let shift = usize::from(level > 1);
            // Mean over the level's nodes of the attention from the node to `keys(node)`.
            let mass = |keys: &dyn Fn(&ParityNode) -> Vec<usize>| {
                nodes
                    .iter()
                    .map(|n| keys(n).iter().map(|&q| m[n.probe_position][q]).sum::<f64>())
                    .sum::<f64>()
                    / nodes.len() as f64
            };
            for (shifted, metric) in [(0, "child_mass"), (shift, "child_pred_mass")] {
                let value = mass(&|n| n.children.iter().map(|&c| c - shifted).collect());
                out.push((format!("level{level}_l{}_{metric}", l + 1), value));
            }
            if level >= 3 {
                let value = mass(&|n| level1_descendants(parity.nodes(), n));
                out.push((format!("level{level}_l{}_level1_mass", l + 1), value));
            }
        }
    }
    Ok(out)
}

/// Probe positions (where each is computed when zero-filled) of the level-1 nodes below
/// `node`: its 2^(ℓ−1) level-1 descendants. Attention there from a level-ℓ ≥ 3 node skips
/// the levels in between (e.g. a root reading the four level-1 values with four heads).
fn level1_descendants(nodes: &[ParityNode], node: &ParityNode) -> Vec<usize> {
    if node.level == 1 {
        return vec![node.probe_position];
    }
    node.children
        .iter()
        .filter_map(|&slot| nodes.iter().find(|c| c.slot == slot && c.level + 1 == node.level))
        .flat_map(|c| level1_descendants(nodes, c))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn jump_layer_is_the_largest_gain() {
        assert_eq!(super::jump_layer(&[0.5, 0.88, 1.0]), 1);
        assert_eq!(super::jump_layer(&[0.55, 0.45, 1.0]), 2);
        assert_eq!(super::jump_layer(&[0.5]), 0);
        assert!(super::strictly_increasing(&[2, 3, 4]) && super::strictly_increasing(&[1]));
        assert!(!super::strictly_increasing(&[1, 1, 2]) && !super::strictly_increasing(&[2, 1]));
    }

    #[test]
    fn the_root_of_8_parity_has_four_level1_descendants() {
        let cfg: tinylab_tasks::ParityConfig = toml::from_str("n_bits = 16\nk = 8").unwrap();
        let parity = tinylab_tasks::Parity::new(cfg).unwrap();
        let nodes = parity.nodes();
        let level1: Vec<usize> = nodes.iter().filter(|n| n.level == 1).map(|n| n.probe_position).collect();
        let root = nodes.iter().find(|n| n.level == 3).unwrap();
        assert_eq!(super::level1_descendants(nodes, root), level1);
        let left = nodes.iter().find(|n| n.level == 2 && n.index == 0).unwrap();
        assert_eq!(super::level1_descendants(nodes, left), level1[..2].to_vec());
    }
}
