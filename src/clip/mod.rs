//! CLIP: model files, checkpoint import, the tokenizer and the two towers (METHOD.md A1, A3).
//!
//! Everything here is generic over [`crate::Backend`]; the towers mirror open_clip's
//! `VisionTransformer` and `TextTransformer` (open_clip 3.3, `src/open_clip/transformer.py`).

mod error;
pub mod import;
pub mod tokenizer;

pub use error::ModelError;
