//! Errors from reading user inputs (images) and writing outputs.

/// An input could not be read or an output not written. Messages name the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The file could not be opened, read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The bytes are not an image this program can decode (only PNG and JPEG are supported).
    #[error("{path}: cannot decode image: {what}")]
    Decode {
        /// The file (or a description of the in-memory source).
        path: String,
        /// What the decoder said.
        what: String,
    },
    /// The image is larger than the configured limit (its header may also just lie).
    #[error("{path}: image is {width}x{height}, larger than the limit of {limit}x{limit} pixels")]
    TooLarge {
        /// The file.
        path: String,
        /// Width the header declares.
        width: u64,
        /// Height the header declares.
        height: u64,
        /// The largest side accepted.
        limit: u32,
    },
    /// The image has no pixels, or an argument (size, crop) makes no sense.
    #[error("{path}: {what}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        what: String,
    },
}
