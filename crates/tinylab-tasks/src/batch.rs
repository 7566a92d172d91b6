//! One generated batch of sequences.

/// Target value of a position that carries no label (ignored by the loss and by accuracy).
pub const IGNORE: i32 = -100;

/// A batch of `batch_size` sequences of length `seq_len`, row-major.
///
/// Token tasks fill `inputs` and `targets` only (`num_features = 0`, `features` and `values`
/// empty). Continuous tasks ([`Task::num_features`](crate::Task::num_features) `F > 0`) put
/// the input vectors in `features`, mark the labelled positions in `targets` (any value other
/// than [`IGNORE`], e.g. 0) and put the real-valued target there in `values`; `inputs` stays 0.
///
/// # Shapes
/// `inputs`: `[batch_size, seq_len]` token ids; `targets`: `[batch_size, seq_len]`, the token the
/// model must predict at that position, or [`IGNORE`]; `features`: `[batch_size, seq_len,
/// num_features]`; `values`: `[batch_size, seq_len]` (0 at unlabelled positions).
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// Number of sequences.
    pub batch_size: usize,
    /// Length of every sequence.
    pub seq_len: usize,
    /// Input token ids, `[batch_size, seq_len]` row-major.
    pub inputs: Vec<u32>,
    /// Target token ids or [`IGNORE`], `[batch_size, seq_len]` row-major.
    pub targets: Vec<i32>,
    /// Width `F` of a continuous input vector; 0 for token tasks.
    pub num_features: usize,
    /// Continuous inputs, `[batch_size, seq_len, num_features]` row-major (empty for token tasks).
    pub features: Vec<f32>,
    /// Real-valued targets at the labelled positions, `[batch_size, seq_len]` (empty for token
    /// tasks).
    pub values: Vec<f32>,
}

impl Batch {
    /// An all-zero batch with every target [`IGNORE`], ready to be filled.
    pub fn empty(batch_size: usize, seq_len: usize) -> Self {
        Self {
            batch_size,
            seq_len,
            inputs: vec![0; batch_size * seq_len],
            targets: vec![IGNORE; batch_size * seq_len],
            num_features: 0,
            features: Vec::new(),
            values: Vec::new(),
        }
    }

    /// An all-zero continuous batch of `num_features`-wide vectors, every target [`IGNORE`].
    pub fn continuous(batch_size: usize, seq_len: usize, num_features: usize) -> Self {
        Self {
            num_features,
            features: vec![0.0; batch_size * seq_len * num_features],
            values: vec![0.0; batch_size * seq_len],
            ..Self::empty(batch_size, seq_len)
        }
    }

    /// Whether the batch holds continuous inputs (`num_features > 0`).
    pub fn is_continuous(&self) -> bool {
        self.num_features > 0
    }

    /// Input vectors of sequence `b`, `[seq_len, num_features]` row-major.
    pub fn feature_row(&self, b: usize) -> &[f32] {
        let w = self.seq_len * self.num_features;
        &self.features[b * w..(b + 1) * w]
    }

    /// Real-valued targets of sequence `b`.
    pub fn value_row(&self, b: usize) -> &[f32] {
        &self.values[b * self.seq_len..(b + 1) * self.seq_len]
    }

    /// Input tokens of sequence `b`.
    pub fn input_row(&self, b: usize) -> &[u32] {
        &self.inputs[b * self.seq_len..(b + 1) * self.seq_len]
    }

    /// Targets of sequence `b`.
    pub fn target_row(&self, b: usize) -> &[i32] {
        &self.targets[b * self.seq_len..(b + 1) * self.seq_len]
    }

    /// Number of labelled positions (targets other than [`IGNORE`]).
    pub fn num_labelled(&self) -> usize {
        self.targets.iter().filter(|&&t| t != IGNORE).count()
    }
}
