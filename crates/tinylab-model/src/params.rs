//! The named parameter store of a model: trainable `Var`s and frozen constants, keyed by their
//! TransformerLens-style names in a stable (sorted) order.

use std::collections::{BTreeMap, HashMap};

use candle_core::{Result, Tensor, Var};

/// One named weight.
#[derive(Debug, Clone)]
pub enum Param {
    /// Updated by the optimizer.
    Trainable(Var),
    /// Kept at its initial value; no gradient is computed for it.
    Frozen(Tensor),
}

impl Param {
    /// The current value.
    pub fn tensor(&self) -> &Tensor {
        match self {
            Param::Trainable(v) => v.as_tensor(),
            Param::Frozen(t) => t,
        }
    }
}

/// All weights of a model by name, sorted.
#[derive(Debug, Clone, Default)]
pub struct Params {
    entries: BTreeMap<String, Param>,
}

impl Params {
    /// Adds a weight; frozen ones get no gradient.
    pub fn insert(&mut self, name: String, value: Tensor, frozen: bool) -> Result<()> {
        let p = if frozen { Param::Frozen(value) } else { Param::Trainable(Var::from_tensor(&value)?) };
        self.entries.insert(name, p);
        Ok(())
    }

    /// The weight called `name`; panics on a name the model never created (a programming error).
    pub fn get(&self, name: &str) -> &Tensor {
        match self.entries.get(name) {
            Some(p) => p.tensor(),
            None => panic!("model has no parameter {name}"),
        }
    }

    /// Whether a weight of that name exists.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// Whether the weight is frozen.
    pub fn is_frozen(&self, name: &str) -> bool {
        matches!(self.entries.get(name), Some(Param::Frozen(_)))
    }

    /// Names in sorted order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(|s| s.as_str())
    }

    /// Trainable weights `(name, var)`, sorted by name.
    pub fn trainable(&self) -> Vec<(String, Var)> {
        self.entries
            .iter()
            .filter_map(|(n, p)| match p {
                Param::Trainable(v) => Some((n.clone(), v.clone())),
                Param::Frozen(_) => None,
            })
            .collect()
    }

    /// Every weight `(name, tensor)` (trainable and frozen), sorted by name.
    pub fn all(&self) -> Vec<(String, Tensor)> {
        self.entries.iter().map(|(n, p)| (n.clone(), p.tensor().clone())).collect()
    }

    /// Number of scalar entries in trainable weights.
    pub fn num_trainable(&self) -> usize {
        self.trainable().iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// Overwrites every weight with the tensor of the same name (a checkpoint). Errors on a
    /// missing name or a shape mismatch; extra entries in `tensors` are ignored.
    pub fn load(&mut self, tensors: &HashMap<String, Tensor>) -> Result<()> {
        for (name, p) in self.entries.iter_mut() {
            let Some(t) = tensors.get(name) else { candle_core::bail!("checkpoint has no tensor `{name}`") };
            let current = p.tensor();
            if t.dims() != current.dims() {
                candle_core::bail!(
                    "`{name}`: checkpoint shape {:?}, model shape {:?}",
                    t.dims(),
                    current.dims()
                )
            }
            let t = t.to_dtype(current.dtype())?.to_device(current.device())?;
            match p {
                Param::Trainable(v) => v.set(&t)?,
                Param::Frozen(f) => *f = t,
            }
        }
        Ok(())
    }
}
