//! Typed model configuration: the `[model]` table of an experiment.

use serde::{Deserialize, Serialize};

/// How token ids become vectors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EmbeddingKind {
    /// A trained lookup table `W_E ~ N(0, 1)`.
    #[default]
    Learned,
    /// `W_E[i] = e_i` (requires `d_model ≥ vocab_size`).
    OneHot,
    /// Random orthonormal rows drawn from the seeded RNG (requires `d_model ≥ vocab_size`).
    Orthonormal,
}

/// Positional information added to (or rotated into) the residual stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PositionalKind {
    /// No positional encoding (NoPE): only causality and convolutions see order.
    #[default]
    None,
    /// A trained table `W_pos` `[max_seq_len, d_model]` added to the embedding.
    Learned,
    /// Fixed sinusoids added to the embedding (Vaswani et al.).
    Sinusoidal,
    /// Rotary embedding of queries and keys in every layer (`rope_base`).
    Rope,
}

/// How attention scores become weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AttentionKind {
    /// Causal softmax over `scale · q·k`.
    #[default]
    Softmax,
    /// Unnormalized causal scores `scale · q·k` used directly as weights (future masked to 0).
    Linear,
}

/// Parameterization of the attention matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WeightsKind {
    /// Separate `W_Q, W_K` `[n_heads, d_model, d_head]`, `W_V` `[n_heads, d_model, d_value]` and
    /// `W_O` `[n_heads, d_value, d_model]`.
    #[default]
    Factorized,
    /// One `W_QK` and one `W_OV`, each `[n_heads, d_model, d_model]`.
    Combined,
}

/// Normalization used before attention, before the MLP and before the unembedding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NormKind {
    /// LayerNorm with gain `w` and bias `b`.
    #[default]
    LayerNorm,
    /// RMSNorm with gain `w`.
    RmsNorm,
    /// Identity.
    None,
}

/// Normalization of queries and keys before their dot product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum QkNormKind {
    /// Raw `q·k`.
    #[default]
    None,
    /// `q/‖q‖ · k/‖k‖` times a learned per-head temperature `τ = exp(qk_log_temp)`
    /// (init `τ = qk_scale_init`).
    L2,
}

/// MLP non-linearity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Exact (erf) GELU.
    #[default]
    Gelu,
    /// `max(0, x)`.
    Relu,
}

/// What the model reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum InputKind {
    /// Token ids through the embedding `W_E` (and positions).
    #[default]
    Tokens,
    /// Real vectors `[B, T, d_model]` that are the residual stream directly (no embedding, no
    /// positions): continuous tasks such as in-context linear regression.
    Continuous,
}

impl InputKind {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// What the model outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ReadoutKind {
    /// Logits through the final norm and `W_U`.
    #[default]
    Unembed,
    /// The last coordinate of the final residual stream (the `y`-slot of an `(x, y)` token),
    /// one real number per position: with residual connections and no MLP this is the input's
    /// `y` plus the attention output's `y` (von Oswald et al.; Mahankali et al.).
    LastCoordinate,
}

impl ReadoutKind {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

fn is_true(b: &bool) -> bool {
    *b
}

fn yes() -> bool {
    true
}

/// The `[model]` table. Every part of the tiny transformer is switchable here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Width of the residual stream.
    pub d_model: usize,
    /// Number of transformer blocks (1–4 is the intended range).
    pub n_layers: usize,
    /// Attention heads per block.
    pub n_heads: usize,
    /// Width of one head; `0` means `d_model / n_heads`.
    pub d_head: usize,
    /// Inner width of the factorized OV circuit (`W_V` `[H, d, d_value]`, `W_O`
    /// `[H, d_value, d]`), i.e. the largest rank `W_V W_O` can have; `0` means `d_head`.
    /// Lets a sweep vary the OV rank without touching the QK side.
    pub d_value: usize,
    /// Vocabulary size; `0` means "take it from the task".
    pub vocab_size: usize,
    /// Token embedding kind.
    pub embedding: EmbeddingKind,
    /// Positional encoding kind.
    pub positional: PositionalKind,
    /// Longest sequence a learned positional table covers.
    pub max_seq_len: usize,
    /// Base of the rotary frequencies.
    pub rope_base: f64,
    /// Softmax or linear attention.
    pub attention: AttentionKind,
    /// Factorized or combined attention weights.
    pub weights: WeightsKind,
    /// Score scale; `0` means `1/√d_head` for softmax and `1` for linear attention.
    pub attn_scale: f64,
    /// Normalization of q and k.
    pub qk_norm: QkNormKind,
    /// Initial temperature of L2-normalized q·k.
    pub qk_scale_init: f64,
    /// Causal depthwise short convolution on the query path (CAT).
    pub conv_q: bool,
    /// Causal depthwise short convolution on the key path (CAT).
    pub conv_k: bool,
    /// Causal depthwise short convolution on the value path (CAT).
    pub conv_v: bool,
    /// Number of taps (lags 0..kernel) of each convolution.
    pub conv_kernel: usize,
    /// Whether each block has an MLP after attention.
    pub mlp: bool,
    /// Hidden width of the MLP; `0` means `4·d_model`.
    pub d_mlp: usize,
    /// MLP non-linearity.
    pub activation: Activation,
    /// Normalization kind (pre-norm blocks and a final norm).
    pub norm: NormKind,
    /// Residual connections around attention and MLP.
    pub residual: bool,
    /// Unembedding tied to the embedding: `W_U = W_Eᵀ`.
    pub tied_unembed: bool,
    /// Parameters kept fixed at their initial value, by full name (`blocks.0.attn.W_K`) or by
    /// last segment (`W_K` = that matrix in every block).
    pub freeze: Vec<String>,
    /// Matrices initialized to the identity (per head; needs square slices), same naming as
    /// `freeze`.
    pub identity_init: Vec<String>,
    /// Multiplier on every random initialization's standard deviation.
    pub init_scale: f64,
    /// Token ids or continuous vectors (`continuous` needs `readout = "last_coordinate"`).
    #[serde(default, skip_serializing_if = "InputKind::is_default")]
    pub input: InputKind,
    /// Logits or the last residual coordinate.
    #[serde(default, skip_serializing_if = "ReadoutKind::is_default")]
    pub readout: ReadoutKind,
    /// Whether a position attends to itself (`false`: strictly causal, linear attention only;
    /// google-research's LSA keeps the query out of the keys and values, `include_query =
    /// False`).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub attend_self: bool,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            d_model: 64,
            n_layers: 1,
            n_heads: 1,
            d_head: 0,
            d_value: 0,
            vocab_size: 0,
            embedding: EmbeddingKind::Learned,
            positional: PositionalKind::None,
            max_seq_len: 1024,
            rope_base: 10_000.0,
            attention: AttentionKind::Softmax,
            weights: WeightsKind::Factorized,
            attn_scale: 0.0,
            qk_norm: QkNormKind::None,
            qk_scale_init: 10.0,
            conv_q: false,
            conv_k: false,
            conv_v: false,
            conv_kernel: 3,
            mlp: false,
            d_mlp: 0,
            activation: Activation::Gelu,
            norm: NormKind::LayerNorm,
            residual: true,
            tied_unembed: false,
            freeze: Vec::new(),
            identity_init: Vec::new(),
            init_scale: 1.0,
            input: InputKind::Tokens,
            readout: ReadoutKind::Unembed,
            attend_self: true,
        }
    }
}

/// A model configuration that cannot be built.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("{key}: {message}")]
pub struct ConfigError {
    /// The offending `[model]` key.
    pub key: String,
    /// What is wrong and what is allowed.
    pub message: String,
}

fn bad(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError { key: key.to_string(), message: message.into() }
}

impl ModelConfig {
    /// Width of one head after resolving `d_head = 0`.
    pub fn head_dim(&self) -> usize {
        if self.d_head == 0 {
            self.d_model / self.n_heads.max(1)
        } else {
            self.d_head
        }
    }

    /// Inner width of the factorized OV circuit after resolving `d_value = 0`.
    pub fn value_dim(&self) -> usize {
        if self.d_value == 0 {
            self.head_dim()
        } else {
            self.d_value
        }
    }

    /// MLP hidden width after resolving `d_mlp = 0`.
    pub fn mlp_dim(&self) -> usize {
        if self.d_mlp == 0 {
            4 * self.d_model
        } else {
            self.d_mlp
        }
    }

    /// Score scale after resolving `attn_scale = 0`.
    pub fn score_scale(&self) -> f64 {
        match (self.attn_scale, self.attention) {
            (s, _) if s != 0.0 => s,
            (_, AttentionKind::Softmax) => 1.0 / (self.head_dim() as f64).sqrt(),
            (_, AttentionKind::Linear) => 1.0,
        }
    }

    /// Checks sizes and combinations; `vocab_size` must be resolved (non-zero) by then.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.d_model == 0 {
            return Err(bad("d_model", "must be ≥ 1"));
        }
        if !(1..=8).contains(&self.n_layers) {
            return Err(bad("n_layers", format!("is {}; allowed 1..=8", self.n_layers)));
        }
        if self.n_heads == 0 {
            return Err(bad("n_heads", "must be ≥ 1"));
        }
        if self.d_head == 0 && !self.d_model.is_multiple_of(self.n_heads) {
            return Err(bad(
                "n_heads",
                format!("d_model {} is not divisible by n_heads {}; set d_head", self.d_model, self.n_heads),
            ));
        }
        if self.d_value != 0 && self.weights == WeightsKind::Combined {
            return Err(bad(
                "d_value",
                "sets the inner width of a factorized W_V W_O; with weights = \"combined\" leave it 0",
            ));
        }
        let continuous = self.input == InputKind::Continuous;
        if continuous != (self.readout == ReadoutKind::LastCoordinate) {
            return Err(bad(
                "readout",
                "input = \"continuous\" goes with readout = \"last_coordinate\" (and tokens with unembed)",
            ));
        }
        if continuous && self.positional != PositionalKind::None {
            return Err(bad("positional", "continuous inputs have no positional encoding; use none"));
        }
        if continuous && self.tied_unembed {
            return Err(bad("tied_unembed", "continuous inputs have no embedding to tie"));
        }
        if !self.attend_self && self.attention != AttentionKind::Linear {
            return Err(bad("attend_self", "false needs linear attention (a softmax row would be empty)"));
        }
        if !continuous && self.vocab_size == 0 {
            return Err(bad("vocab_size", "must be ≥ 1 (0 means: take it from the task)"));
        }
        if !continuous
            && matches!(self.embedding, EmbeddingKind::OneHot | EmbeddingKind::Orthonormal)
            && self.d_model < self.vocab_size
        {
            return Err(bad(
                "embedding",
                format!(
                    "{:?} embeddings need d_model ≥ vocab_size ({} < {})",
                    self.embedding, self.d_model, self.vocab_size
                ),
            ));
        }
        if self.positional == PositionalKind::Rope && !self.head_dim().is_multiple_of(2) {
            return Err(bad("positional", "rope needs an even d_head"));
        }
        if self.positional == PositionalKind::Learned && self.max_seq_len == 0 {
            return Err(bad("max_seq_len", "must be ≥ 1 with learned positions"));
        }
        if (self.conv_q || self.conv_k || self.conv_v) && self.conv_kernel == 0 {
            return Err(bad("conv_kernel", "must be ≥ 1"));
        }
        if self.weights == WeightsKind::Combined && self.qk_norm != QkNormKind::None {
            return Err(bad("qk_norm", "needs factorized weights (combined W_QK has no separate q and k)"));
        }
        if self.weights == WeightsKind::Combined && self.positional == PositionalKind::Rope {
            return Err(bad("positional", "rope needs factorized weights"));
        }
        if self.qk_norm == QkNormKind::L2 && !(self.qk_scale_init > 0.0 && self.qk_scale_init.is_finite()) {
            return Err(bad("qk_scale_init", "must be a finite number > 0"));
        }
        if !(self.init_scale.is_finite() && self.init_scale >= 0.0) {
            return Err(bad("init_scale", "must be a finite number ≥ 0"));
        }
        Ok(())
    }
}
