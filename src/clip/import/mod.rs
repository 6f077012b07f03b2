//! Importing CLIP checkpoints (OpenAI TorchScript, open_clip, Hugging Face) into model files.

pub mod pickle;
pub mod torch;
pub mod zip;
