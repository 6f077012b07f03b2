//! Prompt learning (METHOD.md A3, A5, B) — native only: the text encoder's backward into the
//! prompts, the training losses and their gradients, the feature cache and the trainer.
pub mod adam;
pub mod config;
pub mod features;
pub mod loss;
pub mod real;
pub mod rng;
pub mod state;
pub mod text;
pub mod trainer;
