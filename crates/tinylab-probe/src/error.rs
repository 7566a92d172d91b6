//! The crate's error type.
#![warn(missing_docs)]

/// Why an analysis could not be computed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProbeError {
    /// A tensor operation failed (e.g. reading a weight off its device).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    /// Operand shapes do not fit together; the message names the operation and the shapes.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A factorization did not converge (in practice: the input holds NaN or ±∞).
    #[error("{0} did not converge (non-finite input?)")]
    NoConvergence(&'static str),
    /// The model has no such weight, layer or head.
    #[error("{0}")]
    NotFound(String),
    /// An argument is outside its allowed range; the message says what is allowed.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// `Result` with [`ProbeError`].
pub type Result<T> = std::result::Result<T, ProbeError>;
