//! [`DatasetError`]: what the dataset readers, masks and the result cache report.

use super::Layout;

/// Errors of the dataset readers, masks and the result cache. Messages name the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatasetError {
    /// A file or folder could not be read, listed or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The folder matches no layout.
    #[error(
        "{dir}: no known dataset layout: expected split_csv/1cls.csv (VisA), <class>/test/<defect>/ (MVTec AD) \
         or <class>/good/ beside one folder per defect type (folder layout); or name one with --layout"
    )]
    UnknownLayout {
        /// The folder.
        dir: String,
    },
    /// The layout was read but no test image was found.
    #[error("{dir}: no test images found for the {layout} layout")]
    Empty {
        /// The folder.
        dir: String,
        /// The layout read.
        layout: Layout,
    },
    /// A VisA split file cannot be used.
    #[error("{path}, line {line}: {what}")]
    Csv {
        /// The CSV file.
        path: String,
        /// Its line (1-based).
        line: usize,
        /// What is wrong.
        what: String,
    },
    /// `--classes` names a class the dataset does not have.
    #[error("no class `{name}` in the dataset (classes: {available})")]
    UnknownClass {
        /// The name asked for.
        name: String,
        /// The classes there are, comma-separated.
        available: String,
    },
    /// A ground-truth mask cannot be used.
    #[error("mask {path}: {what}")]
    Mask {
        /// The mask file.
        path: String,
        /// What is wrong.
        what: String,
    },
    /// A cached result is damaged or belongs to another image; it is recomputed.
    #[error("cache entry {path}: {what}")]
    Cache {
        /// The cache file.
        path: String,
        /// What is wrong.
        what: String,
    },
}
