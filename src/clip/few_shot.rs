//! The few-shot memory a model file may carry (docs/FEW_SHOT.md): how many normal images made
//! it, at which layers, and how its map joins the zero-shot one. The memory itself is one tensor
//! per layer, `few_shot.memory.{layer}`, `[D, k·N]`: the L2-normalised patch embeddings of the k
//! images (N = grid² patches each) as columns, so a test image's `[N, D]` patches multiply it
//! directly.

use serde::{Deserialize, Serialize};

use super::config::ModelConfig;
use super::weights::TensorSource;
use super::ModelError;

/// Weight of the few-shot map added to the zero-shot map (APRIL-GAN adds the two maps as they
/// are).
pub const DEFAULT_WEIGHT: f32 = 1.0;

/// The few-shot memory's settings, stored in the model file's config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FewShotConfig {
    /// Normal images in the memory (k ≥ 1).
    pub shots: usize,
    /// 1-indexed layers of the vision tower the memory holds (tapped where the feature layers
    /// are: DPAM tokens after `ln_post` and the projection), not necessarily feature layers.
    pub layers: Vec<usize>,
    /// Weight of the few-shot map in the final map: `map = zero-shot + weight · few-shot`.
    pub weight: f32,
    /// Whether the image score takes the few-shot map's maximum in: `(score + max) / 2`.
    pub image_score: bool,
    /// Where the memory came from (for `info`), e.g. "3 images from good/".
    pub source: String,
    /// [`model_fingerprint`] of the model whose encoder made the memory: a memory is refused at
    /// load by any other model, even one of the same shapes.
    pub model: String,
}

/// Largest memory tensor of one layer, in f32 bytes (the portable binding limit).
const MAX_LAYER_BYTES: usize = 128 << 20;

/// Name of the memory tensor of `layer` (1-indexed).
pub fn memory_name(layer: usize) -> String {
    format!("few_shot.memory.{layer}")
}

/// A short digest (16 hex digits of SHA-256) of a model's vision projection and class
/// embedding as stored: two models share it only if they share those weights.
///
/// # Errors
/// The tensors cannot be read.
pub fn model_fingerprint(src: &dyn TensorSource) -> Result<String, ModelError> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for name in ["visual.proj", "visual.class_embedding"] {
        let raw = src.read_raw(name)?;
        h.update(name.as_bytes());
        h.update(raw.bytes);
    }
    Ok(h.finalize().iter().take(8).map(|b| format!("{b:02x}")).collect())
}

/// The default few-shot layers: the last layer of each quarter of the vision tower (ViT-L/14:
/// 6, 12, 18, 24; ViT-B/16: 3, 6, 9, 12), the layers APRIL-GAN and AnomalyCLIP take patch
/// tokens from.
pub fn default_layers(config: &ModelConfig) -> Vec<usize> {
    let n = config.clip.vision.layers;
    let mut layers: Vec<usize> = (1..=4).map(|q| (q * n / 4).max(1)).collect();
    layers.dedup();
    layers
}

/// Patches per image at the model's input size.
pub fn patches_per_image(config: &ModelConfig) -> usize {
    let grid = config.input_size / config.clip.vision.patch_size;
    grid * grid
}

impl FewShotConfig {
    /// Checks the settings against the model they belong to.
    pub fn validate(&self, config: &ModelConfig) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::Config(m));
        if self.shots == 0 {
            return bad("a few-shot memory of 0 images".into());
        }
        if self.layers.is_empty() {
            return bad("a few-shot memory without layers".into());
        }
        let depth = config.clip.vision.layers;
        if let Some(l) = self.layers.iter().find(|&&l| l == 0 || l > depth) {
            return bad(format!("few-shot layer {l} is outside the vision tower's layers 1–{depth}"));
        }
        let mut seen = self.layers.clone();
        seen.sort_unstable();
        seen.dedup();
        if seen.len() != self.layers.len() {
            return bad(format!("few-shot layers {:?} repeat a layer", self.layers));
        }
        // One layer's memory is one tensor: it must fit a portable GPU binding in f32.
        let per_image = config.clip.embed_dim * patches_per_image(config) * 4;
        let most = (MAX_LAYER_BYTES / per_image.max(1)).max(1);
        if self.shots > most {
            return bad(format!(
                "a few-shot memory of {} images is too large for this model (at most {most}: each layer's memory \
                 is one tensor of at most 128 MiB)",
                self.shots
            ));
        }
        if !self.weight.is_finite() || self.weight < 0.0 {
            return bad(format!("few-shot weight {} must be finite and ≥ 0", self.weight));
        }
        Ok(())
    }
}
