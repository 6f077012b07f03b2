//! CLIP: model files, checkpoint import, the tokenizer and the two towers (METHOD.md A1, A3).
//!
//! Everything here is generic over [`crate::Backend`]; the towers mirror open_clip's
//! `VisionTransformer` and `TextTransformer` (open_clip 3.3, `src/open_clip/transformer.py`).

pub mod batch;
pub mod config;
pub mod dpam;
mod error;
pub mod few_shot;
pub mod import;
pub mod model;
pub mod model_file;
pub mod safetensors;
pub mod text;
pub mod tokenizer;
pub mod transformer;
pub mod vision;
pub mod weights;

pub use error::ModelError;
