//! Errors from building a task out of its configuration.

/// A task configuration that cannot produce valid sequences.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum TaskError {
    /// A field holds a value outside what the task allows.
    #[error("{key}: {message}")]
    Invalid {
        /// The offending field, e.g. `"num_kv"`.
        key: String,
        /// What is wrong and what is allowed.
        message: String,
    },
}

impl TaskError {
    /// Shorthand for [`TaskError::Invalid`].
    pub fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid { key: key.into(), message: message.into() }
    }

    /// The offending field name.
    pub fn key(&self) -> &str {
        match self {
            Self::Invalid { key, .. } => key,
        }
    }
}
