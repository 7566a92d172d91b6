//! The tiny transformer: embedding → blocks (pre-norm attention [+ MLP]) → final norm →
//! unembedding, with every part chosen by [`ModelConfig`].

use std::collections::HashMap;

use candle_core::{DType, Device, Result, Tensor};

use crate::config::{
    ConfigError, EmbeddingKind, InputKind, ModelConfig, NormKind, PositionalKind, ReadoutKind,
};
use crate::hooks::{Cache, HookPoint, HookSet};
use crate::init::Init;
use crate::ops::{layer_norm, rms_norm};
use crate::params::Params;
use crate::positional::{sinusoidal, Rope};
use crate::{attention, mlp};

/// Errors from building a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The configuration is inconsistent.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// What one forward pass computes besides the logits.
#[derive(Debug, Clone, Copy, Default)]
pub struct ForwardOptions<'a> {
    /// Flat indices into the `B·T` positions whose logits are wanted (`[N]`, u32); `None`
    /// computes logits at every position. Selecting before the unembedding saves the
    /// `B·T·V` logits when only a few positions are labelled.
    pub select: Option<&'a Tensor>,
    /// Hook points to record.
    pub hooks: Option<&'a HookSet>,
}

/// Result of a forward pass.
#[derive(Debug)]
pub struct ModelOutput {
    /// `[B, T, V]`, or `[N, V]` when positions were selected; with `readout =
    /// "last_coordinate"` the real-valued predictions `[B, T]` or `[N]`.
    pub logits: Tensor,
    /// Recorded activations (empty unless hooks were asked for).
    pub cache: Cache,
}

/// A tiny transformer with named weights.
#[derive(Debug, Clone)]
pub struct Model {
    cfg: ModelConfig,
    params: Params,
    device: Device,
    dtype: DType,
    /// Per layer, an optional `[T, T]` 0/1 matrix of the (query, key) pairs that may attend
    /// (on top of causality), e.g. the Log-ICoT tree-level mask; see [`Model::set_attention_masks`].
    masks: Vec<Option<Tensor>>,
}

/// Whether `pattern` names `name` (full name, or its last dotted segment).
fn name_matches(pattern: &str, name: &str) -> bool {
    pattern == name || name.rsplit('.').next() == Some(pattern)
}

impl Model {
    /// Builds a model with weights drawn from `seed` (our own ChaCha8 stream).
    pub fn new(
        cfg: &ModelConfig,
        seed: u64,
        device: &Device,
        dtype: DType,
    ) -> std::result::Result<Self, ModelError> {
        cfg.validate()?;
        let mut init = Init::new(seed, device, dtype);
        let mut w: Vec<(String, Tensor)> = Vec::new();
        let (v, d) = (cfg.vocab_size, cfg.d_model);
        let s = cfg.init_scale;
        let tokens = cfg.input == InputKind::Tokens;
        if tokens {
            let we = match cfg.embedding {
                EmbeddingKind::Learned => init.normal(&[v, d], s)?,
                EmbeddingKind::OneHot => init.identity_stack(1, v, d)?.squeeze(0)?,
                EmbeddingKind::Orthonormal => init.orthonormal_rows(v, d)?,
            };
            w.push(("embed.W_E".into(), we));
        }
        if cfg.positional == PositionalKind::Learned {
            w.push(("pos_embed.W_pos".into(), init.normal(&[cfg.max_seq_len, d], s)?));
        }
        let norm_params = |prefix: &str, w: &mut Vec<(String, Tensor)>, init: &Init| -> Result<()> {
            if cfg.norm != NormKind::None {
                w.push((format!("{prefix}.w"), init.full(&[d], 1.0)?));
            }
            if cfg.norm == NormKind::LayerNorm {
                w.push((format!("{prefix}.b"), init.full(&[d], 0.0)?));
            }
            Ok(())
        };
        for l in 0..cfg.n_layers {
            norm_params(&format!("blocks.{l}.ln1"), &mut w, &init)?;
            attention::init(cfg, l, &mut init, &mut w)?;
            if cfg.mlp {
                norm_params(&format!("blocks.{l}.ln2"), &mut w, &init)?;
                mlp::init(cfg, l, &mut init, &mut w)?;
            }
        }
        norm_params("ln_final", &mut w, &init)?;
        if !cfg.tied_unembed && cfg.readout == ReadoutKind::Unembed {
            w.push(("unembed.W_U".into(), init.normal(&[d, v], s / (d as f64).sqrt())?));
        }
        Self::check_names("freeze", &cfg.freeze, &w)?;
        Self::check_names("identity_init", &cfg.identity_init, &w)?;
        let mut params = Params::default();
        for (name, mut t) in w {
            if cfg.identity_init.iter().any(|p| name_matches(p, &name)) {
                t = match t.dims() {
                    [r, c] => init.identity_stack(1, *r, *c)?.squeeze(0)?,
                    [n, r, c] => init.identity_stack(*n, *r, *c)?,
                    _ => t,
                };
            }
            let frozen = cfg.freeze.iter().any(|p| name_matches(p, &name));
            params.insert(name, t, frozen)?;
        }
        Ok(Self { cfg: cfg.clone(), params, device: device.clone(), dtype, masks: Vec::new() })
    }

    fn check_names(
        key: &str,
        patterns: &[String],
        w: &[(String, Tensor)],
    ) -> std::result::Result<(), ConfigError> {
        for p in patterns {
            if !w.iter().any(|(n, _)| name_matches(p, n)) {
                let names: Vec<&str> = w.iter().map(|(n, _)| n.as_str()).collect();
                return Err(ConfigError {
                    key: key.into(),
                    message: format!("no parameter named `{p}`; this model has: {}", names.join(", ")),
                });
            }
        }
        Ok(())
    }

    /// An independent model of the same configuration (weights not shared with `self`; a
    /// plain `clone` shares the trainable variables' storage).
    pub fn clone_fresh(&self) -> std::result::Result<Self, ModelError> {
        let mut m = Self::new(&self.cfg, 0, &self.device, self.dtype)?;
        let tensors = self.params.all().into_iter().collect();
        m.load_weights(&tensors)?;
        m.masks = self.masks.clone();
        Ok(m)
    }

    /// Restricts which keys each query may attend to, per layer, on top of causality:
    /// `masks[l]` is `None` (no restriction) or a row-major `T × T` list where
    /// `allowed[q·T + k]` says whether query position `q` may attend key position `k`.
    /// Softmax attention gets `−1e9` added to the disallowed scores; linear attention
    /// multiplies them by 0. Every later forward must then have sequence length `T`. A row
    /// with no allowed key is an error (its softmax would be undefined).
    pub fn set_attention_masks(&mut self, masks: &[Option<Vec<bool>>], t: usize) -> Result<()> {
        if masks.len() > self.cfg.n_layers {
            candle_core::bail!("{} attention masks for {} layers", masks.len(), self.cfg.n_layers);
        }
        self.masks = Vec::new();
        for (l, m) in masks.iter().enumerate() {
            self.masks.push(match m {
                None => None,
                Some(allowed) => {
                    if allowed.len() != t * t {
                        candle_core::bail!(
                            "attention mask of layer {l} has {} entries, not {t}×{t}",
                            allowed.len()
                        );
                    }
                    if let Some(q) = (0..t).find(|&q| !(0..=q).any(|k| allowed[q * t + k])) {
                        candle_core::bail!(
                            "attention mask of layer {l}: query {q} may attend no earlier key"
                        );
                    }
                    let v: Vec<f32> = allowed.iter().map(|&a| if a { 1.0 } else { 0.0 }).collect();
                    Some(Tensor::from_vec(v, (t, t), &self.device)?.to_dtype(self.dtype)?)
                }
            });
        }
        Ok(())
    }

    /// The attention mask of layer `l` set by [`Model::set_attention_masks`], if any.
    pub fn attention_mask(&self, l: usize) -> Option<&Tensor> {
        self.masks.get(l).and_then(|m| m.as_ref())
    }

    /// The configuration the model was built from.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// The named weights.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// Mutable weights (to load a checkpoint).
    pub fn params_mut(&mut self) -> &mut Params {
        &mut self.params
    }

    /// Loads every weight from a name → tensor map (e.g. a checkpoint).
    pub fn load_weights(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        self.params.load(tensors)
    }

    /// Device of the weights.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Float type of the weights.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    fn norm(&self, prefix: &str, x: &Tensor) -> Result<Tensor> {
        match self.cfg.norm {
            NormKind::LayerNorm => layer_norm(
                x,
                self.params.get(&format!("{prefix}.w")),
                self.params.get(&format!("{prefix}.b")),
            ),
            NormKind::RmsNorm => rms_norm(x, self.params.get(&format!("{prefix}.w"))),
            NormKind::None => Ok(x.clone()),
        }
    }

    /// Token (+ additive positional) embedding.
    ///
    /// # Shapes
    /// `tokens`: `[B, T]` u32 → `[B, T, d]`.
    pub fn embed(&self, tokens: &Tensor) -> Result<Tensor> {
        if self.cfg.input == InputKind::Continuous {
            candle_core::bail!(
                "this model reads continuous inputs (model.input = \"continuous\"): use forward_features"
            );
        }
        let (b, t) = tokens.dims2()?;
        let d = self.cfg.d_model;
        let we = self.params.get("embed.W_E");
        let x = we.index_select(&tokens.flatten_all()?, 0)?.reshape((b, t, d))?;
        match self.cfg.positional {
            PositionalKind::Learned => {
                if t > self.cfg.max_seq_len {
                    candle_core::bail!(
                        "sequence length {t} exceeds model.max_seq_len {}",
                        self.cfg.max_seq_len
                    );
                }
                // [T, d] repeated over the batch by a matmul (gemm backward, not a scalar reduce)
                let pos = self.params.get("pos_embed.W_pos").narrow(0, 0, t)?.reshape((1, t * d))?;
                let ones = Tensor::ones((b, 1), self.dtype, &self.device)?;
                x.add(&ones.matmul(&pos)?.reshape((b, t, d))?)
            }
            PositionalKind::Sinusoidal => x.broadcast_add(&sinusoidal(t, d, self.dtype, &self.device)?),
            PositionalKind::None | PositionalKind::Rope => Ok(x),
        }
    }

    /// Runs the model on token ids.
    ///
    /// # Shapes
    /// `tokens`: `[B, T]` u32 → logits `[B, T, V]` (or `[N, V]` with `select`).
    pub fn forward(&self, tokens: &Tensor, opts: ForwardOptions<'_>) -> Result<ModelOutput> {
        let x = self.embed(tokens)?;
        self.forward_embedded(&x, opts)
    }

    /// Runs a continuous-input model (`input = "continuous"`) on real vectors that are the
    /// residual stream directly.
    ///
    /// # Shapes
    /// `features`: `[B, T, d_model]` → `logits` = predictions `[B, T]` (or `[N]` with `select`)
    /// with `readout = "last_coordinate"`.
    pub fn forward_features(&self, features: &Tensor, opts: ForwardOptions<'_>) -> Result<ModelOutput> {
        if self.cfg.input != InputKind::Continuous {
            candle_core::bail!("this model reads token ids (model.input = \"tokens\"): use forward");
        }
        self.forward_embedded(features, opts)
    }

    /// Runs the blocks and the readout on an already-embedded stream (continuous inputs).
    ///
    /// # Shapes
    /// `x`: `[B, T, d]` → logits `[B, T, V]` (or `[N, V]` with `select`); with `readout =
    /// "last_coordinate"`, the last residual coordinate `[B, T]` (or `[N]`).
    pub fn forward_embedded(&self, x: &Tensor, opts: ForwardOptions<'_>) -> Result<ModelOutput> {
        let empty = HookSet::none();
        let hooks = opts.hooks.unwrap_or(&empty);
        let mut cache = Cache::default();
        let (b, t, d) = x.dims3()?;
        cache.record(hooks, HookPoint::Embed, x);
        let rope = match self.cfg.positional {
            PositionalKind::Rope => {
                Some(Rope::new(t, self.cfg.head_dim(), self.cfg.rope_base, self.dtype, &self.device)?)
            }
            _ => None,
        };
        let mut x = x.clone();
        for l in 0..self.cfg.n_layers {
            cache.record(hooks, HookPoint::ResidPre(l), &x);
            let a_in = self.norm(&format!("blocks.{l}.ln1"), &x)?;
            let mask = self.attention_mask(l);
            let a = attention::forward(
                &self.cfg,
                &self.params,
                l,
                &a_in,
                rope.as_ref(),
                mask,
                hooks,
                &mut cache,
            )?;
            cache.record(hooks, HookPoint::AttnOut(l), &a);
            x = if self.cfg.residual { (x + a)? } else { a };
            if self.cfg.mlp {
                cache.record(hooks, HookPoint::ResidMid(l), &x);
                let m_in = self.norm(&format!("blocks.{l}.ln2"), &x)?;
                let m = mlp::forward(&self.cfg, &self.params, l, &m_in)?;
                cache.record(hooks, HookPoint::MlpOut(l), &m);
                x = if self.cfg.residual { (x + m)? } else { m };
            }
            cache.record(hooks, HookPoint::ResidPost(l), &x);
        }
        let x = self.norm("ln_final", &x)?;
        cache.record(hooks, HookPoint::FinalNorm, &x);
        let rows = x.reshape((b * t, d))?;
        let rows = match opts.select {
            Some(idx) => rows.index_select(idx, 0)?,
            None => rows,
        };
        if self.cfg.readout == ReadoutKind::LastCoordinate {
            let y = rows.narrow(1, d - 1, 1)?.squeeze(1)?;
            let logits = match opts.select {
                Some(_) => y,
                None => y.reshape((b, t))?,
            };
            return Ok(ModelOutput { logits, cache });
        }
        let logits = rows.matmul(&self.unembedding()?)?;
        let logits = match opts.select {
            Some(_) => logits,
            None => logits.reshape((b, t, self.cfg.vocab_size))?,
        };
        Ok(ModelOutput { logits, cache })
    }

    /// Reads a residual stream through the final norm and the unembedding (the logit lens).
    ///
    /// # Shapes
    /// `x`: `[…, d]` → `[…, V]`.
    pub fn unembed_residual(&self, x: &Tensor) -> Result<Tensor> {
        let n = self.norm("ln_final", x)?;
        let dims = n.dims().to_vec();
        let d = *dims.last().unwrap_or(&0);
        let rows = n.reshape((n.elem_count() / d.max(1), d))?;
        let mut out = dims[..dims.len() - 1].to_vec();
        out.push(self.cfg.vocab_size);
        rows.matmul(&self.unembedding()?)?.reshape(out)
    }

    /// The unembedding `W_U` `[d, V]` (`W_Eᵀ` when tied).
    pub fn unembedding(&self) -> Result<Tensor> {
        if self.cfg.readout != ReadoutKind::Unembed {
            candle_core::bail!("this model has no unembedding (model.readout = \"last_coordinate\")");
        }
        if self.cfg.tied_unembed {
            self.params.get("embed.W_E").t()?.contiguous()
        } else {
            Ok(self.params.get("unembed.W_U").clone())
        }
    }
}
