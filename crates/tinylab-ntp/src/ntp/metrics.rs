//! The `probe.ntp.*` final metrics: aggregates over the trials of an NTP run.

use super::{Curves, Trial};
use crate::linalg::{cosine, norm};
use crate::spectral::nuclear_norm;

/// Aggregates of the trials (the `probe.ntp.*` metrics).
pub fn final_metrics(trials: &[Trial]) -> Vec<(&'static str, f64)> {
    let mean = |v: Vec<f64>| if v.is_empty() { f64::NAN } else { v.iter().sum::<f64>() / v.len() as f64 };
    let last = |f: fn(&Curves) -> &Vec<f64>| {
        trials.iter().map(|t| *f(&t.curves).last().expect("curve")).collect::<Vec<_>>()
    };
    let cyc: Vec<&Trial> = trials.iter().filter(|t| t.s_fin_dim > 0).collect();
    // Normalised GD with a fixed step oscillates around its limit at amplitude ~lr/2, so
    // "decreasing" compares quarter means (last quarter of the run / first quarter), not
    // two single points.
    let quarters = |t: &Trial| {
        let v = &t.curves.fin_dist;
        let q = (v.len() / 4).max(1);
        let first = v[..q].iter().sum::<f64>() / q as f64;
        let lastq = v[v.len() - q..].iter().sum::<f64>() / q as f64;
        lastq / first
    };
    let cos = last(|c| &c.cos_svm);
    let cos_nuc = last(|c| &c.cos_svm_nuc);
    let tops: Vec<(f64, f64)> = trials.iter().filter_map(|t| t.top_share_tv).collect();
    vec![
        ("cos_svm_mean", mean(cos.clone())),
        ("cos_svm_min", cos.iter().cloned().fold(f64::INFINITY, f64::min)),
        ("cos_svm_fin_mean", mean(last(|c| &c.cos_svm_fin))),
        ("cos_svm_init_mean", mean(trials.iter().map(|t| t.cos_init).collect())),
        ("cos_svm_noeq_mean", mean(trials.iter().map(|t| t.cos_noeq).collect())),
        ("cos_svm_nuc_mean", mean(cos_nuc.clone())),
        ("cos_svm_nuc_min", cos_nuc.iter().cloned().fold(f64::INFINITY, f64::min)),
        ("cos_svm_nuc_init_mean", mean(trials.iter().map(|t| t.cos_nuc_init).collect())),
        ("cos_nuc_minus_svm_mean", mean(cos_nuc.iter().zip(&cos).map(|(a, b)| a - b).collect())),
        ("nuc_margin_ratio_mean", mean(trials.iter().map(|t| t.nuc_margin_ratio).collect())),
        ("fro_margin_ratio_mean", mean(trials.iter().map(|t| t.fro_margin_ratio).collect())),
        ("cos_svm_vs_nuc_mean", mean(trials.iter().map(|t| cosine(&t.w_svm, &t.svm_nuc.w)).collect())),
        ("svm_nuc_gap_max", trials.iter().map(|t| t.svm_nuc.rel_gap()).fold(0.0, f64::max)),
        (
            "svm_nuc_ratio_mean",
            mean(trials.iter().map(|t| t.svm_nuc.nuclear / nuclear_norm(&t.w_svm, t.ds.d)).collect()),
        ),
        (
            "allstrict_infeasible_frac",
            mean(trials.iter().map(|t| if t.allstrict_infeasible { 1.0 } else { 0.0 }).collect()),
        ),
        ("fin_dist_mean", mean(cyc.iter().map(|t| *t.curves.fin_dist.last().expect("curve")).collect())),
        (
            "fin_dist_rel_mean",
            mean(
                cyc.iter()
                    .filter(|t| norm(&t.w_fin) > 1e-9)
                    .map(|t| t.curves.fin_dist.last().expect("curve") / norm(&t.w_fin))
                    .collect(),
            ),
        ),
        ("fin_dist_ratio_mean", mean(cyc.iter().map(|t| quarters(t)).collect())),
        ("w_fin_norm_mean", mean(cyc.iter().map(|t| norm(&t.w_fin)).collect())),
        ("w_svm_norm_mean", mean(trials.iter().map(|t| norm(&t.w_svm)).collect())),
        ("lower_scc_attn_mean", mean(trials.iter().flat_map(|t| t.lower_final.clone()).collect())),
        ("lower_scc_attn_max", trials.iter().flat_map(|t| t.lower_final.clone()).fold(0.0, f64::max)),
        ("top_scc_min_share", tops.iter().map(|x| x.0).fold(f64::NAN, f64::min)),
        ("top_scc_tv_wfin_max", tops.iter().map(|x| x.1).fold(f64::NAN, f64::max)),
        ("w_norm_mean", mean(last(|c| &c.w_norm))),
        ("cyclic_trials", cyc.len() as f64),
    ]
}
