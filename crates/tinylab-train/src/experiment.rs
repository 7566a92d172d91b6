//! The experiment file: `[task]`, `[model]`, `[train]`, `[[eval]]`, `[[check]]`, typed and
//! validated, with `--set` overrides. Every error names the file, the key and what is allowed.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tinylab_model::ModelConfig;
use tinylab_tasks::TaskConfig;
use toml::{Table, Value};

use crate::checks::CheckSpec;
pub use crate::config_error::ConfigError;
use crate::curriculum::{resolve_curriculum, Curriculum, CurriculumConfig};
use crate::overrides;
pub use crate::train_config::{DataMode, EarlyStop, TrainConfig};

/// The experiment file as written (eval entries still raw task overrides).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExperiment {
    #[serde(default)]
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    seed: u64,
    pub(crate) task: TaskConfig,
    #[serde(default)]
    model: ModelConfig,
    #[serde(default)]
    pub(crate) train: TrainConfig,
    #[serde(default)]
    eval: Vec<Table>,
    #[serde(default)]
    check: Vec<CheckSpec>,
    #[serde(default)]
    probe: Vec<Table>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) curriculum: Option<CurriculumConfig>,
}

/// One `[[probe]]` entry: an analysis run after training (by the CLI's probe stage), whose
/// scalar results become metrics `probe.<what>.<name>` that checks can refer to.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeSpec {
    /// Which probe, e.g. `conv`, `attention`, `spectrum`.
    pub what: String,
    /// Its options (every key of the entry except `what`).
    pub options: Table,
}

/// One evaluation set: the training task with some fields overridden (e.g. longer sequences).
#[derive(Debug, Clone, PartialEq)]
pub struct EvalSet {
    /// Name used in metric paths: `eval.<name>.acc`.
    pub name: String,
    /// The task after overrides.
    pub task: TaskConfig,
    /// Number of sequences evaluated.
    pub samples: usize,
    /// The entry's task fields (what it changes relative to the training task or stage).
    pub overrides: Table,
}

/// A validated experiment.
#[derive(Debug, Clone)]
pub struct Experiment {
    /// Experiment name (defaults to the file stem).
    pub name: String,
    /// One-paragraph description of the claim.
    pub description: String,
    /// Seed of model init and data.
    pub seed: u64,
    /// Training task.
    pub task: TaskConfig,
    /// Model (vocab_size resolved from the task).
    pub model: ModelConfig,
    /// Training loop settings.
    pub train: TrainConfig,
    /// Evaluation sets (with a curriculum: their tasks as in the last stage).
    pub eval: Vec<EvalSet>,
    /// The stages of training (one implicit stage without `[curriculum]`).
    pub curriculum: Curriculum,
    /// Claims to check at the end.
    pub checks: Vec<CheckSpec>,
    /// Probes to run after training.
    pub probes: Vec<ProbeSpec>,
    /// The resolved configuration as TOML (what `config.toml` in the run directory holds).
    pub resolved_toml: String,
    /// The part of it that determines training (no description, checks or probes): the run id
    /// hashes this, so adding a check or a probe re-analyses a run instead of retraining it.
    pub training_toml: String,
}

impl Experiment {
    /// The model of this experiment with freshly initialized weights (seed `self.seed`) and
    /// the attention masks the task asks for (e.g. the parity tree-level mask).
    pub fn build_model(&self, device: &candle_core::Device) -> anyhow::Result<tinylab_model::Model> {
        let mut model = tinylab_model::Model::new(&self.model, self.seed, device, candle_core::DType::F32)?;
        let task = self.task.build()?;
        let masks = task.attention_masks(self.model.n_layers);
        if !masks.is_empty() {
            model.set_attention_masks(&masks, task.seq_len())?;
        }
        Ok(model)
    }
}

pub(crate) fn err(file: &str, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError { file: file.into(), key: key.into(), message: message.into() }
}

pub(crate) fn typed<T: serde::de::DeserializeOwned>(
    file: &str,
    prefix: &str,
    v: Value,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(v).map_err(|e| {
        let path = e.path().to_string();
        let key = match (prefix, path.as_str()) {
            ("", ".") => "(top level)".to_string(),
            ("", p) => p.to_string(),
            (pre, ".") => pre.to_string(),
            (pre, p) => format!("{pre}.{p}"),
        };
        err(file, key, plain_words(&e.into_inner().to_string()))
    })
}

/// Serde's messages in a researcher's words: `expected usize` → `expected a non-negative
/// integer`; drops the `in `key`` suffix the TOML layer appends (the key is named already).
fn plain_words(msg: &str) -> String {
    let msg = msg.trim().split(" in `").next().unwrap_or(msg).to_string();
    [
        ("usize", "a non-negative integer"),
        ("u64", "a non-negative integer"),
        ("f64", "a number"),
        ("a boolean", "true or false"),
    ]
    .iter()
    .fold(msg, |m, (rust, words)| m.replace(&format!("expected {rust}"), &format!("expected {words}")))
}

impl Experiment {
    /// Reads, overrides (`key.path=value` strings and an optional seed) and validates a file.
    pub fn load(path: &Path, sets: &[String], seed: Option<u64>) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text =
            std::fs::read_to_string(path).map_err(|e| err(&file, "(file)", format!("cannot read: {e}")))?;
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        Self::from_str(&text, &file, &stem, sets, seed)
    }

    /// Like [`Experiment::load`] on text already read; `file` is used in messages.
    pub fn from_str(
        text: &str,
        file: &str,
        default_name: &str,
        sets: &[String],
        seed: Option<u64>,
    ) -> Result<Self, ConfigError> {
        let mut table: Table = text.parse().map_err(|e: toml::de::Error| {
            err(file, "(syntax)", e.message().to_string() + &line_of(text, e.span()))
        })?;
        for s in sets {
            overrides::apply(&mut table, s).map_err(|m| err(file, "--set", m))?;
        }
        if let Some(seed) = seed {
            table.insert("seed".into(), Value::Integer(seed as i64));
        }
        let mut raw: RawExperiment = typed(file, "", Value::Table(table))?;
        if raw.name.is_empty() {
            raw.name = default_name.to_string();
        }
        Self::validate(raw, file)
    }

    fn validate(mut raw: RawExperiment, file: &str) -> Result<Self, ConfigError> {
        let task = raw.task.build().map_err(|e| err(file, format!("task.{}", e.key()), e.to_string()))?;
        let features = task.num_features();
        let continuous_model = raw.model.input == tinylab_model::InputKind::Continuous;
        if features > 0 && !continuous_model {
            return Err(err(
                file,
                "model.input",
                format!(
                    "task `{}` has continuous inputs; set model.input = \"continuous\", \
                     model.readout = \"last_coordinate\" and model.d_model = {features}",
                    task.name()
                ),
            ));
        }
        if features == 0 && continuous_model {
            return Err(err(
                file,
                "model.input",
                format!("task `{}` has token inputs; use tokens", task.name()),
            ));
        }
        if features > 0 && raw.model.d_model != features {
            return Err(err(
                file,
                "model.d_model",
                format!("{} must equal the task's feature width {features} (d + 1)", raw.model.d_model),
            ));
        }
        if raw.model.vocab_size == 0 {
            raw.model.vocab_size = task.vocab_size();
        } else if raw.model.vocab_size < task.vocab_size() {
            return Err(err(
                file,
                "model.vocab_size",
                format!(
                    "{} is smaller than the task's vocabulary {}",
                    raw.model.vocab_size,
                    task.vocab_size()
                ),
            ));
        }
        raw.model.validate().map_err(|e| err(file, format!("model.{}", e.key), e.message))?;
        let t = &raw.train;
        for (key, v) in [
            ("steps", t.steps),
            ("batch_size", t.batch_size),
            ("eval_every", t.eval_every),
            ("log_every", t.log_every),
        ] {
            if v == 0 {
                return Err(err(file, format!("train.{key}"), "must be ≥ 1"));
            }
        }
        if t.data == DataMode::Pool && t.pool_size < t.batch_size {
            return Err(err(file, "train.pool_size", format!("must be ≥ batch_size ({})", t.batch_size)));
        }
        t.optimizer.validate().map_err(|e| err(file, "train.optimizer", e.to_string()))?;
        t.schedule.validate().map_err(|e| err(file, "train.schedule", e.to_string()))?;
        if !(t.grad_clip >= 0.0 && t.grad_clip.is_finite()) {
            return Err(err(file, "train.grad_clip", "must be a finite number ≥ 0 (0 = off)"));
        }
        crate::layer_targets::validate(t, task.as_ref(), &raw.model, file)?;
        let task_table = match Value::try_from(&raw.task) {
            Ok(Value::Table(t)) => t,
            _ => return Err(err(file, "task", "cannot be re-serialized")),
        };
        let mut eval = Vec::new();
        let mut max_len = task.seq_len();
        for (i, entry) in raw.eval.iter().enumerate() {
            let key = |k: &str| format!("eval[{i}].{k}");
            let mut merged = task_table.clone();
            let mut overrides = Table::new();
            let mut name = None;
            let mut samples = 512usize;
            for (k, v) in entry {
                match k.as_str() {
                    "name" => {
                        name = Some(v.as_str().ok_or_else(|| err(file, key("name"), "must be a string"))?)
                    }
                    "samples" => {
                        samples = v
                            .as_integer()
                            .filter(|&n| n > 0)
                            .ok_or_else(|| err(file, key("samples"), "must be an integer ≥ 1"))?
                            as usize
                    }
                    "kind" => {
                        return Err(err(file, key("kind"), "an eval set keeps the training task's kind"))
                    }
                    _ => {
                        merged.insert(k.clone(), v.clone());
                        overrides.insert(k.clone(), v.clone());
                    }
                }
            }
            let name = name.ok_or_else(|| err(file, key("name"), "missing; every [[eval]] needs a name"))?;
            if name.is_empty() || name.contains(['.', ',', '"', ' ']) {
                return Err(err(
                    file,
                    key("name"),
                    "must be non-empty without dots, commas, quotes or spaces",
                ));
            }
            if eval.iter().any(|e: &EvalSet| e.name == name) {
                return Err(err(file, key("name"), format!("`{name}` is used twice")));
            }
            let etask: TaskConfig = typed(file, &format!("eval[{i}]"), Value::Table(merged))?;
            let built = etask.build().map_err(|e| err(file, key(e.key()), e.to_string()))?;
            if built.vocab_size() > raw.model.vocab_size {
                return Err(err(file, key("vocab_size"), "exceeds the model's vocabulary"));
            }
            max_len = max_len.max(built.seq_len());
            eval.push(EvalSet { name: name.to_string(), task: etask, samples, overrides });
        }
        let curriculum = resolve_curriculum(&mut raw, &task_table, &mut eval, file)?;
        for stage in &curriculum.stages {
            for t in std::iter::once(&stage.task).chain(&stage.eval_tasks) {
                let built = t.build().expect("validated");
                max_len = max_len.max(built.seq_len());
            }
        }
        if raw.model.positional == tinylab_model::PositionalKind::Learned && max_len > raw.model.max_seq_len {
            return Err(err(
                file,
                "model.max_seq_len",
                format!(
                    "{} is shorter than the longest train/eval sequence ({max_len})",
                    raw.model.max_seq_len
                ),
            ));
        }
        let mut probes = Vec::new();
        for (i, entry) in raw.probe.iter().enumerate() {
            let mut options = entry.clone();
            let what = match options.remove("what") {
                Some(Value::String(w)) if !w.is_empty() && !w.contains('.') => w,
                _ => {
                    return Err(err(
                        file,
                        format!("probe[{i}].what"),
                        "missing; a string naming the probe, e.g. \"conv\"",
                    ))
                }
            };
            probes.push(ProbeSpec { what, options });
        }
        let stage_splits: Vec<String> = match curriculum.explicit {
            true => curriculum.stages.iter().map(|s| format!("curriculum.{}", s.name)).collect(),
            false => vec![],
        };
        let splits: Vec<String> = std::iter::once("train".to_string())
            .chain(eval.iter().map(|e| format!("eval.{}", e.name)))
            .chain(probes.iter().map(|p| format!("probe.{}", p.what)))
            .chain(stage_splits)
            .collect();
        for (i, s) in curriculum.stages.iter().enumerate() {
            if let Some(u) = &s.until {
                let probe = CheckSpec {
                    name: "until".into(),
                    metric: u.metric.clone(),
                    at_least: Some(u.at_least),
                    at_most: None,
                };
                let train_or_eval: Vec<String> =
                    splits.iter().filter(|s| *s == "train" || s.starts_with("eval.")).cloned().collect();
                probe
                    .validate(&train_or_eval)
                    .map_err(|m| err(file, format!("curriculum.stage[{i}].until.metric"), m))?;
            }
        }
        for (i, c) in raw.check.iter().enumerate() {
            c.validate(&splits).map_err(|m| err(file, format!("check[{i}]"), m))?;
        }
        if let Some(es) = &raw.train.early_stop {
            let probe = CheckSpec {
                name: "early_stop".into(),
                metric: es.metric.clone(),
                at_least: Some(es.at_least),
                at_most: None,
            };
            probe.validate(&splits).map_err(|m| err(file, "train.early_stop.metric", m))?;
        }
        let resolved_toml = toml::to_string(&raw).map_err(|e| err(file, "(resolve)", e.to_string()))?;
        let training =
            RawExperiment { description: String::new(), check: vec![], probe: vec![], ..raw.clone() };
        let training_toml = toml::to_string(&training).map_err(|e| err(file, "(resolve)", e.to_string()))?;
        Ok(Self {
            name: raw.name,
            description: raw.description,
            seed: raw.seed,
            task: raw.task,
            model: raw.model,
            train: raw.train,
            eval,
            curriculum,
            checks: raw.check,
            probes,
            resolved_toml,
            training_toml,
        })
    }
}

fn line_of(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    match span {
        Some(r) => format!(" (line {})", text[..r.start.min(text.len())].matches('\n').count() + 1),
        None => String::new(),
    }
}
