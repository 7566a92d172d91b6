//! One generated batch of sequences.

/// Target value of a position that carries no label (ignored by the loss and by accuracy).
pub const IGNORE: i32 = -100;

/// A batch of `batch_size` sequences of length `seq_len`, row-major.
///
/// # Shapes
/// `inputs`: `[batch_size, seq_len]` token ids; `targets`: `[batch_size, seq_len]`, the token the
/// model must predict at that position, or [`IGNORE`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// Number of sequences.
    pub batch_size: usize,
    /// Length of every sequence.
    pub seq_len: usize,
    /// Input token ids, `[batch_size, seq_len]` row-major.
    pub inputs: Vec<u32>,
    /// Target token ids or [`IGNORE`], `[batch_size, seq_len]` row-major.
    pub targets: Vec<i32>,
}

impl Batch {
    /// An all-zero batch with every target [`IGNORE`], ready to be filled.
    pub fn empty(batch_size: usize, seq_len: usize) -> Self {
        Self {
            batch_size,
            seq_len,
            inputs: vec![0; batch_size * seq_len],
            targets: vec![IGNORE; batch_size * seq_len],
        }
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
