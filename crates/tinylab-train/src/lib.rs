//! Experiment configs, the training loop, optimizers with saveable state, checkpoints,
//! evaluation, claim checks and the run directory of tinylab.
//!
//! One run: TOML → [`Experiment`] (validated) → `config.toml` written → batches from the task
//! → model → loss → optimizer → metric rows and checkpoints → evaluation → checks →
//! `summary.json`. See [`trainer::run`].

pub mod checkpoint;
pub mod checks;
mod config_error;
pub mod curriculum;
pub mod data;
pub mod ensemble_batch;
mod ensemble_member;
pub mod ensemble_optim;
pub mod ensemble_step;
pub mod ensemble_trainer;
pub mod eval;
pub mod experiment;
pub mod icl;
mod layer_targets;
pub mod metrics;
pub mod optim;
pub mod overrides;
pub mod progress;
pub mod rundir;
mod stage_cursor;
pub mod train_config;
pub mod trainer;

pub use checks::{CheckResult, CheckSpec};
pub use experiment::{ConfigError, Experiment};
pub use rundir::RunDir;
pub use trainer::{run, RunOptions, RunOutcome, Summary};
#[cfg(test)]
mod curriculum_tests;
#[cfg(test)]
mod ensemble_tests;
#[cfg(test)]
mod icl_tests;
#[cfg(test)]
mod trainer_tests;
