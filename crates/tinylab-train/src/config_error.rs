//! The error every experiment-file problem becomes: the file, the key and what is allowed.

use std::fmt;

/// A configuration problem: which file, which key, what is wrong and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The experiment file (or `--set` for overrides).
    pub file: String,
    /// Dotted key path, e.g. `model.conv_kernel` or `eval[1].seq_len`.
    pub key: String,
    /// What is wrong; what is allowed.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.file, self.key, self.message.replace('\n', " "))
    }
}

impl std::error::Error for ConfigError {}
