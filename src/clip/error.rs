//! Errors from reading, importing and validating CLIP checkpoints and model files.

/// A model file or checkpoint could not be used. Messages name the file and the problem.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not in the format its name or header claims, or is damaged (truncated,
    /// offsets past the end, a header claiming absurd sizes).
    #[error("{path}: corrupt or unsupported file: {what}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong, in words.
        what: String,
    },
    /// A tensor the configuration needs is not in the file.
    #[error("{path}: missing tensor `{name}`")]
    MissingTensor {
        /// The file.
        path: String,
        /// The tensor's name.
        name: String,
    },
    /// A tensor has another shape than the configuration implies.
    #[error("{path}: tensor `{name}` has shape {got:?}, expected {expected:?}")]
    ShapeMismatch {
        /// The file.
        path: String,
        /// The tensor's name.
        name: String,
        /// What the configuration implies.
        expected: Vec<usize>,
        /// What the file holds.
        got: Vec<usize>,
    },
    /// A tensor is stored in a type the configuration does not allow.
    #[error("{path}: tensor `{name}` is {got}, expected {expected}")]
    DTypeMismatch {
        /// The file.
        path: String,
        /// The tensor's name.
        name: String,
        /// What the configuration implies.
        expected: String,
        /// What the file holds.
        got: String,
    },
    /// Tensors the configuration does not know about (a sign of a different architecture).
    #[error("{path}: unexpected tensors {names:?}")]
    UnexpectedTensors {
        /// The file.
        path: String,
        /// Up to a few of their names.
        names: Vec<String>,
    },
    /// The checkpoint holds a model this program cannot run (ResNet CLIP, a custom text tower, …).
    #[error("{path}: unsupported model: {what}")]
    Unsupported {
        /// The file.
        path: String,
        /// What was found.
        what: String,
    },
    /// Detection was asked of a file that holds only CLIP (no text embeddings).
    #[error(
        "{path}: this model file has no text embeddings, so it cannot detect; re-import it with \
         `tokenclip import --clip CHECKPOINT --prompts ensemble|PROMPTS --out MODEL`"
    )]
    NoTextEmbeddings {
        /// The file.
        path: String,
    },
    /// The configuration (model metadata or import options) is inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl ModelError {
    /// Shorthand for [`ModelError::Corrupt`].
    pub fn corrupt(path: impl std::fmt::Display, what: impl Into<String>) -> Self {
        ModelError::Corrupt { path: path.to_string(), what: what.into() }
    }

    /// Shorthand for [`ModelError::Io`].
    pub fn io(path: impl std::fmt::Display, source: std::io::Error) -> Self {
        ModelError::Io { path: path.to_string(), source }
    }
}
