//! Visual features of training images (METHOD.md A5: the vision tower is frozen, so each image's
//! DPAM patch embeddings and global embedding are computed once, with the inference engine on
//! the GPU or the CPU, and cached on disk keyed by model and image).

use std::path::Path;

use crate::backend::Backend;
use crate::clip::config::ModelConfig;
use crate::clip::model_file::ModelFile;
use crate::clip::vision::VisionTower;
use crate::clip::weights::Weights;
use crate::io::cache::{BlobCache, Fnv64};
use crate::Error;

/// One image's frozen features, every row L2-normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFeatures {
    /// Patch embeddings `[N, D]` per feature layer, in the configured order.
    pub patches: Vec<Vec<f32>>,
    /// Global embedding `[D]`.
    pub global: Vec<f32>,
    /// Patch grid side g (N = g²).
    pub grid: usize,
}

impl ImageFeatures {
    /// Serialised for the cache: layers, grid, width as u32, then the f32 values.
    pub fn to_bytes(&self) -> Vec<u8> {
        let d = self.global.len();
        let mut out = Vec::with_capacity(12 + 4 * (self.patches.iter().map(Vec::len).sum::<usize>() + d));
        for v in [self.patches.len(), self.grid, d] {
            out.extend_from_slice(&(v as u32).to_le_bytes());
        }
        for x in self.patches.iter().flatten().chain(&self.global) {
            out.extend_from_slice(&x.to_le_bytes());
        }
        out
    }

    /// Parses [`Self::to_bytes`]; `None` unless the shapes are exactly `(layers, grid, dim)`.
    pub fn from_bytes(bytes: &[u8], layers: usize, grid: usize, dim: usize) -> Option<Self> {
        let word = |i: usize| bytes.get(4 * i..4 * i + 4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes);
        if (word(0)? as usize, word(1)? as usize, word(2)? as usize) != (layers, grid, dim) {
            return None;
        }
        let n = grid * grid * dim;
        if bytes.len() != 12 + 4 * (layers * n + dim) {
            return None;
        }
        let values: Vec<f32> =
            bytes[12..].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        let patches = values[..layers * n].chunks_exact(n.max(1)).map(<[f32]>::to_vec).collect();
        Some(ImageFeatures { patches, global: values[layers * n..].to_vec(), grid })
    }
}

/// The frozen vision tower of a base model, with a cache of its outputs.
pub struct FeatureExtractor<B: Backend> {
    vision: VisionTower<B>,
    config: ModelConfig,
    model_key: Fnv64,
    cache: Option<BlobCache>,
}

impl<B: Backend> FeatureExtractor<B> {
    /// Loads the vision tower of `file`; features are cached under `cache_dir` when given.
    pub fn load(file: &ModelFile, be: &B, cache_dir: Option<&Path>) -> Result<Self, Error> {
        let config = file.config.clone();
        let vision = VisionTower::load(&Weights::new(file, be).pp("visual"), &config.clip.vision)?;
        let json = serde_json::to_string(&(&config.clip, config.input_size, config.dpam_start, &config.feature_layers))
            .map_err(|e| crate::ModelError::Config(e.to_string()))?;
        let model_key = Fnv64::default().str("tokenclip features v1").file(Path::new(file.path()))?.str(&json);
        let cache = cache_dir.map(BlobCache::open).transpose()?;
        Ok(FeatureExtractor { vision, config, model_key, cache })
    }

    /// The grid side and embedding width of the features.
    pub fn shape(&self) -> (usize, usize) {
        (self.config.input_size / self.config.clip.vision.patch_size, self.config.clip.embed_dim)
    }

    /// Features of a preprocessed image (`3 × S × S`), computed on the device.
    pub async fn compute(&self, be: &B, pixels: &[f32]) -> Result<ImageFeatures, Error> {
        let s = self.config.input_size;
        let x = be.upload(pixels, &[3, s, s])?;
        let out = self.vision.forward(be, &x, self.config.dpam_start, &self.config.feature_layers)?;
        let mut patches = Vec::with_capacity(out.patches.len());
        for p in &out.patches {
            patches.push(be.read(p).await?);
        }
        Ok(ImageFeatures { patches, global: be.read(&out.global).await?, grid: self.shape().0 })
    }

    /// The image's features from the cache, or computed by `pixels()` + [`Self::compute`] and
    /// stored. Returns them and whether they came from the cache. A damaged entry is recomputed.
    pub async fn get_or_compute(
        &self,
        be: &B,
        image: &Path,
        pixels: impl FnOnce() -> Result<Vec<f32>, Error>,
    ) -> Result<(ImageFeatures, bool), Error> {
        let (grid, dim) = self.shape();
        let layers = self.config.feature_layers.len();
        let key = self.model_key.file(image)?.finish();
        if let Some(c) = &self.cache {
            if let Some(f) = c.get(key).and_then(|b| ImageFeatures::from_bytes(&b, layers, grid, dim)) {
                return Ok((f, true));
            }
        }
        let f = self.compute(be, &pixels()?).await?;
        if let Some(c) = &self.cache {
            c.put(key, &f.to_bytes())?;
        }
        Ok((f, false))
    }
}
