//! Hook points: named places in the forward pass whose activations can be recorded.
//!
//! Names follow TransformerLens (`blocks.0.attn.hook_pattern`). Recording costs nothing when
//! the [`HookSet`] is empty: the forward pass only clones a tensor handle into the cache for
//! hooks that were asked for.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use candle_core::Tensor;

/// A place in the forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HookPoint {
    /// Token (+ additive positional) embedding, `[B, T, d_model]`: `hook_embed`.
    Embed,
    /// Residual stream entering block `l`, `[B, T, d_model]`: `blocks.l.hook_resid_pre`.
    ResidPre(usize),
    /// Queries after conv/norm/rope, `[B, H, T, d_head]`: `blocks.l.attn.hook_q`.
    Q(usize),
    /// Keys after conv/norm/rope, `[B, H, T, d_head]`: `blocks.l.attn.hook_k`.
    K(usize),
    /// Values after conv, `[B, H, T, d_value]`: `blocks.l.attn.hook_v`.
    V(usize),
    /// Scaled pre-softmax scores, `[B, H, T, T]`: `blocks.l.attn.hook_attn_scores`.
    AttnScores(usize),
    /// Attention weights (row = query), `[B, H, T, T]`: `blocks.l.attn.hook_pattern`.
    Pattern(usize),
    /// Attention output added to the residual, `[B, T, d_model]`: `blocks.l.hook_attn_out`.
    AttnOut(usize),
    /// Residual between attention and MLP, `[B, T, d_model]`: `blocks.l.hook_resid_mid`.
    ResidMid(usize),
    /// MLP output, `[B, T, d_model]`: `blocks.l.hook_mlp_out`.
    MlpOut(usize),
    /// Residual leaving block `l`, `[B, T, d_model]`: `blocks.l.hook_resid_post`.
    ResidPost(usize),
    /// Final normalized residual read by the unembedding, `[B, T, d_model]`:
    /// `ln_final.hook_normalized`.
    FinalNorm,
}

impl fmt::Display for HookPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use HookPoint::*;
        match self {
            Embed => write!(f, "hook_embed"),
            ResidPre(l) => write!(f, "blocks.{l}.hook_resid_pre"),
            Q(l) => write!(f, "blocks.{l}.attn.hook_q"),
            K(l) => write!(f, "blocks.{l}.attn.hook_k"),
            V(l) => write!(f, "blocks.{l}.attn.hook_v"),
            AttnScores(l) => write!(f, "blocks.{l}.attn.hook_attn_scores"),
            Pattern(l) => write!(f, "blocks.{l}.attn.hook_pattern"),
            AttnOut(l) => write!(f, "blocks.{l}.hook_attn_out"),
            ResidMid(l) => write!(f, "blocks.{l}.hook_resid_mid"),
            MlpOut(l) => write!(f, "blocks.{l}.hook_mlp_out"),
            ResidPost(l) => write!(f, "blocks.{l}.hook_resid_post"),
            FinalNorm => write!(f, "ln_final.hook_normalized"),
        }
    }
}

impl FromStr for HookPoint {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        use HookPoint::*;
        match s {
            "hook_embed" => return Ok(Embed),
            "ln_final.hook_normalized" => return Ok(FinalNorm),
            _ => {}
        }
        let err = || {
            format!(
                "unknown hook point `{s}`; allowed: hook_embed, ln_final.hook_normalized, blocks.L.{{hook_resid_pre, \
                 hook_attn_out, hook_resid_mid, hook_mlp_out, hook_resid_post, attn.hook_q, attn.hook_k, attn.hook_v, \
                 attn.hook_attn_scores, attn.hook_pattern}}"
            )
        };
        let rest = s.strip_prefix("blocks.").ok_or_else(err)?;
        let (layer, name) = rest.split_once('.').ok_or_else(err)?;
        let l: usize = layer.parse().map_err(|_| err())?;
        Ok(match name {
            "hook_resid_pre" => ResidPre(l),
            "attn.hook_q" => Q(l),
            "attn.hook_k" => K(l),
            "attn.hook_v" => V(l),
            "attn.hook_attn_scores" => AttnScores(l),
            "attn.hook_pattern" => Pattern(l),
            "hook_attn_out" => AttnOut(l),
            "hook_resid_mid" => ResidMid(l),
            "hook_mlp_out" => MlpOut(l),
            "hook_resid_post" => ResidPost(l),
            _ => return Err(err()),
        })
    }
}

/// The hook points to record in one forward pass.
#[derive(Debug, Clone, Default)]
pub struct HookSet(BTreeSet<HookPoint>);

impl HookSet {
    /// Records nothing.
    pub fn none() -> Self {
        Self::default()
    }

    /// Records the given points.
    pub fn of(points: impl IntoIterator<Item = HookPoint>) -> Self {
        Self(points.into_iter().collect())
    }

    /// Whether `p` is recorded.
    pub fn wants(&self, p: HookPoint) -> bool {
        !self.0.is_empty() && self.0.contains(&p)
    }
}

/// Activations recorded by a forward pass, by hook point.
#[derive(Debug, Clone, Default)]
pub struct Cache(pub BTreeMap<HookPoint, Tensor>);

impl Cache {
    /// Stores `t` under `p` if `hooks` asks for it.
    pub fn record(&mut self, hooks: &HookSet, p: HookPoint, t: &Tensor) {
        if hooks.wants(p) {
            self.0.insert(p, t.clone());
        }
    }

    /// The activation recorded at `p`.
    pub fn get(&self, p: HookPoint) -> Option<&Tensor> {
        self.0.get(&p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let all = [
            HookPoint::Embed,
            HookPoint::ResidPre(0),
            HookPoint::Q(1),
            HookPoint::K(2),
            HookPoint::V(3),
            HookPoint::AttnScores(0),
            HookPoint::Pattern(1),
            HookPoint::AttnOut(0),
            HookPoint::ResidMid(0),
            HookPoint::MlpOut(2),
            HookPoint::ResidPost(3),
            HookPoint::FinalNorm,
        ];
        for p in all {
            assert_eq!(p.to_string().parse::<HookPoint>().unwrap(), p);
        }
        assert!("blocks.x.hook_resid_pre".parse::<HookPoint>().is_err());
        assert!("blocks.0.hook_nothing".parse::<HookPoint>().is_err());
    }
}
