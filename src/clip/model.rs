//! A CLIP model on one backend: both towers loaded from a [`TensorSource`].

use crate::backend::Backend;
use crate::Error;

use super::config::ModelConfig;
use super::text::TextTower;
use super::vision::VisionTower;
use super::weights::{TensorSource, Weights};

/// CLIP's two towers (the text tower is absent in a vision-only file).
pub struct ClipModel<B: Backend> {
    /// The configuration it was loaded with.
    pub config: ModelConfig,
    /// The image encoder.
    pub vision: VisionTower<B>,
    /// The text encoder, when the file has one.
    pub text: Option<TextTower<B>>,
}

impl<B: Backend> ClipModel<B> {
    /// Uploads every tensor of `src` (already validated against `config`) to `be`.
    pub fn load(src: &dyn TensorSource, config: &ModelConfig, be: &B) -> Result<Self, Error> {
        let w = Weights::new(src, be);
        let vision = VisionTower::load(&w.pp("visual"), &config.clip.vision)?;
        let text = config.clip.text.as_ref().map(|t| TextTower::load(&w, t)).transpose()?;
        Ok(ClipModel { config: config.clone(), vision, text })
    }
}
