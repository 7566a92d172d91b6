//! Tiny transformers on candle, every part switchable from a [`ModelConfig`]: learned or fixed
//! embeddings; positions none / learned / sinusoidal / RoPE; softmax or linear causal attention;
//! factorized (`W_Q, W_K, W_V, W_O`) or combined (`W_QK, W_OV`) weights; CAT's causal depthwise
//! convolutions on the q/k/v paths; optional MLP; LayerNorm / RMSNorm / none; hook points.
//!
//! Weight names follow TransformerLens (`blocks.0.attn.W_Q`, `embed.W_E`, `unembed.W_U`), so a
//! checkpoint reads without a map. Every op the model uses has a finite-difference gradient check.

mod attention;
pub mod config;
pub mod ensemble;
mod ensemble_attn;
mod ensemble_conv;
mod ensemble_gather;
mod ensemble_norm;
mod ensemble_ops;
mod ensemble_par;
mod ensemble_softmax;
#[cfg(test)]
mod ensemble_tests;
mod ensemble_tile;
#[cfg(test)]
mod gradcheck;
pub mod hooks;
mod init;
mod mlp;
mod model;
#[cfg(test)]
mod model_tests;
pub mod ops;
pub mod params;
pub mod positional;

pub use config::{
    Activation, AttentionKind, ConfigError, EmbeddingKind, InputKind, ModelConfig, NormKind, PositionalKind,
    QkNormKind, ReadoutKind, WeightsKind,
};
pub use ensemble::EnsembleModel;
pub use hooks::{Cache, HookPoint, HookSet};
pub use init::Init;
pub use model::{ForwardOptions, Model, ModelError, ModelOutput};
pub use params::{Param, Params};
