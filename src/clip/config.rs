//! Model configuration: the CLIP architecture (read from a checkpoint's shapes at import) and the
//! detection hyperparameters (METHOD.md A1–A4, B), stored as JSON in the model file's metadata.

use serde::{Deserialize, Serialize};

use super::ModelError;

/// CLIP's per-head width: OpenAI's loader derives heads as `width / 64`, and so does import.
pub const HEAD_WIDTH: usize = 64;
/// LayerNorm epsilon of every CLIP LayerNorm (PyTorch's default).
pub const LAYER_NORM_EPS: f32 = 1e-5;

/// The vision tower of a CLIP ViT (open_clip `VisionTransformer`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisionConfig {
    /// Residual width W.
    pub width: usize,
    /// Residual blocks.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Hidden width of the MLP (4W in every released CLIP).
    pub mlp_width: usize,
    /// Patch size p (conv kernel = stride).
    pub patch_size: usize,
    /// Input size the checkpoint was trained at (its positional grid is `image_size / p`).
    pub image_size: usize,
}

impl VisionConfig {
    /// Patches per side at the native size.
    pub fn grid(&self) -> usize {
        self.image_size / self.patch_size
    }
}

/// The text tower (open_clip `TextTransformer` in the OpenAI layout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextConfig {
    /// Residual width.
    pub width: usize,
    /// Residual blocks.
    pub layers: usize,
    /// Attention heads.
    pub heads: usize,
    /// Hidden width of the MLP.
    pub mlp_width: usize,
    /// Positions (77).
    pub context_length: usize,
    /// Token vocabulary (49408).
    pub vocab_size: usize,
}

/// A CLIP ViT: both towers and the joint embedding width.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClipConfig {
    /// The released architecture these shapes match ("ViT-L/14@336"), if any.
    pub name: Option<String>,
    /// Joint embedding width D.
    pub embed_dim: usize,
    /// The vision tower.
    pub vision: VisionConfig,
    /// The text tower; `None` in a file made for inference only (`--vision-only`).
    pub text: Option<TextConfig>,
}

/// Storage type of the weight matrices in a model file (norms, biases and embeddings stay f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum WeightDType {
    /// Full precision.
    #[default]
    F32,
    /// Half precision: half the size, read as f32 and accumulated in f32.
    F16,
}

impl std::str::FromStr for WeightDType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(WeightDType::F32),
            "f16" => Ok(WeightDType::F16),
            _ => Err(format!("unknown dtype `{s}` (expected f16 or f32)")),
        }
    }
}

/// Everything a model file's metadata says about the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// The CLIP architecture.
    pub clip: ClipConfig,
    /// Storage type of the weight matrices.
    pub weights: WeightDType,
    /// Detection input size S (images are squashed to S×S; METHOD.md A1).
    pub input_size: usize,
    /// 1-indexed layers whose patch embeddings are summed (METHOD.md A2).
    pub feature_layers: Vec<usize>,
    /// 1-indexed first layer of the DPAM V-V path (METHOD.md A2).
    pub dpam_start: usize,
}

impl ModelConfig {
    /// Defaults of METHOD.md A1–A2 for a CLIP: S = 518, DPAM from depth/4, the last layer.
    pub fn for_clip(clip: ClipConfig, weights: WeightDType) -> Self {
        let depth = clip.vision.layers;
        ModelConfig { clip, weights, input_size: 518, feature_layers: vec![depth], dpam_start: (depth / 4).max(1) }
    }

    /// Checks internal consistency (sizes, layer indices, head widths).
    pub fn validate(&self) -> Result<(), ModelError> {
        let bad = |m: String| Err(ModelError::Config(m));
        let v = &self.clip.vision;
        if v.width == 0 || v.layers == 0 || v.heads == 0 || v.patch_size == 0 || v.image_size < v.patch_size {
            return bad(format!("vision tower sizes make no sense: {v:?}"));
        }
        if !v.width.is_multiple_of(v.heads) || v.width / v.heads > crate::backend::check::MAX_HEAD_DIM {
            return bad(format!("vision width {} cannot be split into {} heads of at most 128", v.width, v.heads));
        }
        if self.input_size < v.patch_size {
            return bad(format!("input size {} is smaller than the patch size {}", self.input_size, v.patch_size));
        }
        if self.feature_layers.is_empty() || self.feature_layers.iter().any(|&l| l == 0 || l > v.layers) {
            return bad(format!("feature layers {:?} must be within 1..={}", self.feature_layers, v.layers));
        }
        if self.dpam_start == 0 || self.dpam_start > v.layers {
            return bad(format!("dpam_start {} must be within 1..={}", self.dpam_start, v.layers));
        }
        if let Some(t) = &self.clip.text {
            if t.width == 0
                || t.heads == 0
                || !t.width.is_multiple_of(t.heads)
                || t.width / t.heads > 128
                || t.context_length < 2
            {
                return bad(format!("text tower sizes make no sense: {t:?}"));
            }
        }
        Ok(())
    }
}

/// Names the released CLIP ViT these shapes match, if any.
pub fn architecture_name(v: &VisionConfig, embed_dim: usize) -> Option<String> {
    let name = match (v.width, v.layers, v.patch_size, v.image_size, embed_dim) {
        (768, 12, 32, 224, 512) => "ViT-B/32",
        (768, 12, 16, 224, 512) => "ViT-B/16",
        (1024, 24, 14, 224, 768) => "ViT-L/14",
        (1024, 24, 14, 336, 768) => "ViT-L/14@336",
        _ => return None,
    };
    Some(name.to_string())
}
