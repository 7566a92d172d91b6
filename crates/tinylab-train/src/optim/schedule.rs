//! Learning-rate schedules: linear warmup followed by a constant, cosine or linear decay.

use anyhow::ensure;
use serde::{Deserialize, Serialize};

/// The shape of the learning rate after warmup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// $\eta_t = \eta$ (`min_lr_ratio` is ignored).
    #[default]
    Constant,
    /// Half-cosine from $\eta$ down to $r\eta$.
    Cosine,
    /// Straight line from $\eta$ down to $r\eta$.
    Linear,
}

/// A learning-rate schedule config (e.g. `[train.schedule]`); unknown fields are rejected.
///
/// With base rate $\eta$, warmup $W$ = `warmup_steps`, $T$ = `total_steps`,
/// $r$ = `min_lr_ratio` and $p = \min\big(1, (t - W)/(T - W)\big)$ for $t \ge W$:
///
/// $$\eta_t = \begin{cases}
///   \eta\, t / W & t < W \\
///   \eta & \text{constant} \\
///   r\eta + (1-r)\,\eta\,\tfrac12\big(1 + \cos \pi p\big) & \text{cosine} \\
///   r\eta + (1-r)\,\eta\,(1 - p) & \text{linear}
/// \end{cases}$$
///
/// so warmup starts at $0$ and reaches $\eta$ at $t = W$, and a decay reaches $r\eta$ at
/// $t = T$ and stays there.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LrSchedule {
    /// Constant, cosine or linear (default constant).
    pub kind: ScheduleKind,
    /// Steps of linear warmup from 0 (default 0: no warmup).
    pub warmup_steps: usize,
    /// Final learning rate as a fraction $r \in [0, 1]$ of the base rate (default 0).
    pub min_lr_ratio: f64,
}

impl LrSchedule {
    /// Checks that `min_lr_ratio` lies in $[0, 1]$.
    pub fn validate(&self) -> anyhow::Result<()> {
        let r = self.min_lr_ratio;
        ensure!((0.0..=1.0).contains(&r), "min_lr_ratio must be in [0, 1], got {r}");
        Ok(())
    }

    /// The learning rate $\eta_t$ for the (0-based) step `step` of a run of
    /// `total_steps` steps with base rate `base_lr`.
    pub fn lr_at(&self, base_lr: f64, step: usize, total_steps: usize) -> f64 {
        let w = self.warmup_steps;
        if step < w {
            return base_lr * step as f64 / w as f64;
        }
        let progress =
            if total_steps > w { ((step - w) as f64 / (total_steps - w) as f64).min(1.0) } else { 1.0 };
        let min_lr = self.min_lr_ratio * base_lr;
        let frac = match self.kind {
            ScheduleKind::Constant => return base_lr,
            ScheduleKind::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
            ScheduleKind::Linear => 1.0 - progress,
        };
        min_lr + (base_lr - min_lr) * frac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn parses_with_defaults_and_rejects_unknowns() {
        let s: LrSchedule = toml::from_str("").unwrap();
        assert_eq!(s, LrSchedule::default());
        let s: LrSchedule = toml::from_str("kind = \"cosine\"\nwarmup_steps = 10").unwrap();
        assert_eq!((s.kind, s.warmup_steps, s.min_lr_ratio), (ScheduleKind::Cosine, 10, 0.0));
        assert!(toml::from_str::<LrSchedule>("kind = \"exp\"").is_err());
        assert!(toml::from_str::<LrSchedule>("warmup = 3").is_err());
        assert!(LrSchedule { min_lr_ratio: 1.5, ..Default::default() }.validate().is_err());
    }

    #[test]
    fn key_steps() {
        let (lr, w, t) = (1e-3, 100, 1100);
        let mk = |kind| LrSchedule { kind, warmup_steps: w, min_lr_ratio: 0.1 };
        for kind in [ScheduleKind::Constant, ScheduleKind::Cosine, ScheduleKind::Linear] {
            let s = mk(kind);
            assert_eq!(s.lr_at(lr, 0, t), 0.0, "{kind:?}");
            assert!(close(s.lr_at(lr, 50, t), 0.5e-3), "{kind:?}");
            assert!(close(s.lr_at(lr, w, t), lr), "{kind:?}");
        }
        let (cos, lin, cst) =
            (mk(ScheduleKind::Cosine), mk(ScheduleKind::Linear), mk(ScheduleKind::Constant));
        // Mid-decay: both shapes are half-way between lr and 0.1 lr.
        assert!(close(cos.lr_at(lr, 600, t), 0.55e-3));
        assert!(close(lin.lr_at(lr, 600, t), 0.55e-3));
        // A quarter in, cosine is above the line.
        assert!(close(lin.lr_at(lr, 350, t), 0.775e-3));
        let q = 0.1e-3 + 0.9e-3 * 0.5 * (1.0 + std::f64::consts::FRAC_PI_4.cos());
        assert!(close(cos.lr_at(lr, 350, t), q));
        // End and past the end.
        for s in [cos, lin] {
            assert!(close(s.lr_at(lr, t, t), 0.1e-3));
            assert!(close(s.lr_at(lr, t + 50, t), 0.1e-3));
        }
        assert_eq!(cst.lr_at(lr, t, t), lr);
        // No warmup: step 0 is the full rate; total <= warmup does not divide by zero.
        let s = LrSchedule { kind: ScheduleKind::Cosine, ..Default::default() };
        assert_eq!(s.lr_at(lr, 0, t), lr);
        assert!(close(s.lr_at(lr, t, t), 0.0));
        assert!(close(mk(ScheduleKind::Linear).lr_at(lr, 100, 100), 0.1e-3));
    }
}
