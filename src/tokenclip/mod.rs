//! TokenCLIP on top of AnomalyCLIP (METHOD.md A2–A4, B, C): learned prompts and their text
//! embeddings, the textual subspaces, token-to-subspace transport, and scoring. Generic over
//! [`crate::Backend`] like the CLIP code it builds on.

pub mod detector;
pub mod ensemble;
pub mod few_shot;
pub mod prompt_files;
pub mod prompts;
pub mod scoring;
pub mod subspaces;
pub mod transport;

pub use detector::{Detection, Detector};
