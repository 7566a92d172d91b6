//! Seed-batched models: `S` independent members of one configuration, their weights stacked on
//! a leading ensemble dimension (`W_Q` `[S, H, d, d_head]`, `ln1.w` `[S, d]`, …), trained as one
//! graph with batched matmuls.
//!
//! Member `i` of [`EnsembleModel::new`]`(cfg, seeds)` starts bit-identical to the solo
//! [`Model::new`]`(cfg, seeds[i])`, and the forward pass computes what the solo one computes
//! (fused where that saves work, see `ensemble_ops`), so with the loss `Σ_i loss_i` every
//! member's gradient is its solo gradient to rounding (checked in `ensemble_tests`). Frozen weights stay frozen. Token inputs with the unembedding readout only
//! (continuous inputs are refused by [`EnsembleModel::supports`]); no hook points.

use std::collections::HashMap;

use candle_core::{DType, Device, Result, Tensor};

use crate::config::{ConfigError, InputKind, ModelConfig, PositionalKind};
use crate::ensemble_gather::gather_rows;
use crate::ensemble_ops::{self as ops, Dims};
use crate::model::{Model, ModelError};
use crate::params::Params;
use crate::positional::{sinusoidal, Rope};

pub use crate::ensemble_softmax::weighted_log_likelihood;

/// `S` models of one configuration whose weights are stacked on a leading dimension.
#[derive(Debug, Clone)]
pub struct EnsembleModel {
    cfg: ModelConfig,
    size: usize,
    params: Params,
    device: Device,
    dtype: DType,
}

impl EnsembleModel {
    /// Whether a configuration can be trained seed-batched; the error names the unsupported key.
    pub fn supports(cfg: &ModelConfig) -> std::result::Result<(), ConfigError> {
        if cfg.input != InputKind::Tokens {
            return Err(ConfigError {
                key: "input".into(),
                message: "seed-batched training supports token inputs only (input = \"tokens\"); \
                          run the seeds as separate processes (--seeds without --batched)"
                    .into(),
            });
        }
        Ok(())
    }

    /// Builds one solo model per seed (each exactly as a solo run initializes it) and stacks
    /// their weights.
    pub fn new(
        cfg: &ModelConfig,
        seeds: &[u64],
        device: &Device,
        dtype: DType,
    ) -> std::result::Result<Self, ModelError> {
        Self::supports(cfg)?;
        let members = seeds
            .iter()
            .map(|&s| Model::new(cfg, s, device, dtype))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Self::stack(&members)
    }

    /// Stacks the weights of models of one configuration (member `i` = `members[i]`; the new
    /// weights do not share storage with the models).
    pub fn stack(members: &[Model]) -> std::result::Result<Self, ModelError> {
        let Some(first) = members.first() else {
            return Err(candle_core::Error::Msg("an ensemble needs at least one member".into()).into());
        };
        let cfg = first.config().clone();
        Self::supports(&cfg)?;
        if members.iter().any(|m| m.config() != &cfg || m.dtype() != first.dtype()) {
            return Err(candle_core::Error::Msg("ensemble members differ in configuration".into()).into());
        }
        let mut params = Params::default();
        for name in first.params().names() {
            let ts: Vec<Tensor> = members.iter().map(|m| m.params().get(name).clone()).collect();
            params.insert(name.to_string(), Tensor::stack(&ts, 0)?, first.params().is_frozen(name))?;
        }
        Ok(Self { cfg, size: members.len(), params, device: first.device().clone(), dtype: first.dtype() })
    }

    /// Number of members `S`.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The configuration every member shares.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// The stacked weights (solo names, shapes `[S, …]`).
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Device of the weights.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Float type of the weights.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Member `i`'s weights under their solo names and shapes, copied (later optimizer steps
    /// do not change them), sorted by name.
    pub fn member_weights(&self, i: usize) -> Result<Vec<(String, Tensor)>> {
        if i >= self.size {
            candle_core::bail!("member {i} of an ensemble of {}", self.size);
        }
        self.params.all().into_iter().map(|(n, t)| Ok((n, t.get(i)?.copy()?))).collect()
    }

    /// Member `i` as an independent solo model.
    pub fn member(&self, i: usize) -> std::result::Result<Model, ModelError> {
        let mut m = Model::new(&self.cfg, 0, &self.device, self.dtype)?;
        let w: HashMap<String, Tensor> = self.member_weights(i)?.into_iter().collect();
        m.load_weights(&w)?;
        Ok(m)
    }

    /// A new ensemble of the members `keep` (in that order), with weights copied.
    pub fn retain(&self, keep: &[usize]) -> Result<Self> {
        if keep.is_empty() || keep.iter().any(|&i| i >= self.size) {
            candle_core::bail!("cannot keep members {keep:?} of an ensemble of {}", self.size);
        }
        let idx: Vec<u32> = keep.iter().map(|&i| i as u32).collect();
        let idx = Tensor::from_vec(idx, keep.len(), &self.device)?;
        let mut params = Params::default();
        for (name, t) in self.params.all() {
            let frozen = self.params.is_frozen(&name);
            params.insert(name, t.index_select(&idx, 0)?, frozen)?;
        }
        Ok(Self { params, size: keep.len(), ..self.clone() })
    }

    /// Overwrites every member's weights from solo name → tensor maps (checkpoints), one per
    /// member in order.
    pub fn load_members(&mut self, members: &[HashMap<String, Tensor>]) -> Result<()> {
        if members.len() != self.size {
            candle_core::bail!("{} weight sets for an ensemble of {}", members.len(), self.size);
        }
        let mut stacked = HashMap::new();
        for name in self.params.names() {
            let ts = members
                .iter()
                .map(|m| m.get(name).cloned())
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| candle_core::Error::Msg(format!("checkpoint has no tensor `{name}`")))?;
            let ts = ts.iter().map(|t| t.to_dtype(self.dtype)).collect::<Result<Vec<_>>>()?;
            stacked.insert(name.to_string(), Tensor::stack(&ts, 0)?);
        }
        self.params.load(&stacked)
    }

    /// Runs every member on its own batch, differentiably (for training).
    ///
    /// # Shapes
    /// `tokens`: `[S, B, T]` u32; `select`: `[S, N]` u32 flat indices into each member's `B·T`
    /// positions → logits `[S, N, V]`; without `select`, `[S, B, T, V]`.
    pub fn forward(&self, tokens: &Tensor, select: Option<&Tensor>) -> Result<Tensor> {
        self.run(&self.params, tokens, select, true)
    }

    /// [`EnsembleModel::forward`] without a backward graph (evaluation): the weights are read
    /// detached and the fused attention keeps no pattern.
    pub fn evaluate(&self, tokens: &Tensor, select: Option<&Tensor>) -> Result<Tensor> {
        let mut detached = Params::default();
        for (name, t) in self.params.all() {
            detached.insert(name, t.detach(), true)?;
        }
        self.run(&detached, tokens, select, false)
    }

    fn run(&self, p: &Params, tokens: &Tensor, select: Option<&Tensor>, train: bool) -> Result<Tensor> {
        let (s, b, t) = tokens.dims3()?;
        if s != self.size {
            candle_core::bail!("tokens for {s} members, ensemble has {}", self.size);
        }
        let cfg = &self.cfg;
        let (d, v) = (cfg.d_model, cfg.vocab_size);
        let dims = Dims { s, b, t, d };
        let mut x = gather_rows(p.get("embed.W_E"), tokens.flatten_all()?.to_vec1::<u32>()?)?; // [S, B·T, d]
        match cfg.positional {
            PositionalKind::Learned => {
                if t > cfg.max_seq_len {
                    candle_core::bail!("sequence length {t} exceeds model.max_seq_len {}", cfg.max_seq_len);
                }
                // [S, 1, T·d] repeated over the batch by a batched matmul (gemm backward)
                let pos = p.get("pos_embed.W_pos").narrow(1, 0, t)?.reshape((s, 1, t * d))?;
                let ones = Tensor::ones((s, b, 1), self.dtype, &self.device)?;
                x = x.add(&ones.matmul(&pos)?.reshape((s, b * t, d))?)?;
            }
            PositionalKind::Sinusoidal => {
                let pe = sinusoidal(t, d, self.dtype, &self.device)?;
                x = x.reshape((s, b, t, d))?.broadcast_add(&pe)?.reshape((s, b * t, d))?;
            }
            PositionalKind::None | PositionalKind::Rope => {}
        }
        let rope = match cfg.positional {
            PositionalKind::Rope => {
                Some(Rope::new(t, cfg.head_dim(), cfg.rope_base, self.dtype, &self.device)?)
            }
            _ => None,
        };
        let ones = Tensor::ones((s, b * t, 1), self.dtype, &self.device)?; // expands MLP biases
        for l in 0..cfg.n_layers {
            let a_in = ops::norm(cfg, p, &format!("blocks.{l}.ln1"), &x)?;
            let a = ops::attention(cfg, p, l, &a_in, dims, rope.as_ref(), train)?;
            x = if cfg.residual { (x + a)? } else { a };
            if cfg.mlp {
                let m_in = ops::norm(cfg, p, &format!("blocks.{l}.ln2"), &x)?;
                let m = ops::mlp(cfg, p, l, &m_in, &ones)?;
                x = if cfg.residual { (x + m)? } else { m };
            }
        }
        let x = ops::norm(cfg, p, "ln_final", &x)?;
        let rows = match select {
            Some(sel) => {
                if sel.dim(0)? != s {
                    candle_core::bail!("select for {} members, ensemble has {s}", sel.dim(0)?);
                }
                gather_rows(&x, sel.flatten_all()?.to_vec1::<u32>()?)? // [S, N, d]
            }
            None => x,
        };
        let logits = rows.matmul(&unembedding(&self.cfg, p)?)?;
        match select {
            Some(_) => Ok(logits),
            None => logits.reshape((s, b, t, v)),
        }
    }

    /// The stacked unembedding `[S, d, V]` (`W_Eᵀ` per member when tied).
    pub fn unembedding(&self) -> Result<Tensor> {
        unembedding(&self.cfg, &self.params)
    }
}

/// `W_U` `[S, d, V]` of `p` (`W_Eᵀ` per member when tied).
fn unembedding(cfg: &ModelConfig, p: &Params) -> Result<Tensor> {
    if cfg.tied_unembed {
        p.get("embed.W_E").transpose(1, 2)?.contiguous()
    } else {
        Ok(p.get("unembed.W_U").clone())
    }
}
