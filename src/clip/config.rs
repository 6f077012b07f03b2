//! Model configuration: the CLIP architecture (read from a checkpoint's shapes at import) and the
//! detection hyperparameters (METHOD.md A1–A4, B), stored as JSON in the model file's metadata.

use serde::{Deserialize, Serialize};

use super::ModelError;

/// CLIP's per-head width: OpenAI's loader derives heads as `width / 64`, and so does import.
pub const HEAD_WIDTH: usize = 64;
/// LayerNorm epsilon of every CLIP LayerNorm (PyTorch's default).
pub const LAYER_NORM_EPS: f32 = 1e-5;

/// The MLP activation of a CLIP tower (open_clip's `act_layer`, Hugging Face's `hidden_act`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// `x · sigmoid(1.702 x)`: OpenAI's CLIPs and open_clip's `-quickgelu` models. Model files
    /// written before the activation was recorded hold these.
    #[default]
    QuickGelu,
    /// Exact GELU, `x · Φ(x)` with the error function (PyTorch's `nn.GELU()` default): open_clip's
    /// own models (LAION, DataComp, MetaCLIP, …).
    Gelu,
}

impl Activation {
    /// The name used in model files, registries and `--activation`'s help.
    pub fn name(self) -> &'static str {
        match self {
            Activation::QuickGelu => "quick_gelu",
            Activation::Gelu => "gelu",
        }
    }
}

impl std::str::FromStr for Activation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "quick-gelu" | "quick_gelu" | "quickgelu" => Ok(Activation::QuickGelu),
            "gelu" => Ok(Activation::Gelu),
            _ => Err(format!("unknown activation `{s}` (expected quick-gelu or gelu)")),
        }
    }
}

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
    /// The MLP activation.
    #[serde(default)]
    pub activation: Activation,
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
    /// The MLP activation.
    #[serde(default)]
    pub activation: Activation,
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

/// How a token's textual space is formed from its subspace weights (METHOD.md B6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mix {
    /// Mix the subspaces' text embeddings per token, normalise, then score (the default).
    #[default]
    Embeddings,
    /// Score against every subspace, then mix the abnormal probabilities.
    Probabilities,
}

/// How the image score is formed (METHOD.md B7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ScoreMode {
    /// The global embedding against the mean text embeddings (AnomalyCLIP's image score).
    #[default]
    Global,
    /// ½ (global score + maximum of the smoothed map).
    Fused,
}

/// How tokens are assigned to subspaces (METHOD.md B′: the paper's OT and its ablations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Assign {
    /// Entropic optimal transport, then the top-K of each token's plan row (the default).
    #[default]
    Ot,
    /// TokenCLIP-Van: each token wholly to its most similar subspace (ties: the lower index).
    Greedy,
    /// Every subspace equally, `1/M` each (the "no alignment" baseline).
    Uniform,
}

macro_rules! from_str_lowercase {
    ($t:ty, $($name:literal => $v:expr),+) => {
        impl std::str::FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($name => Ok($v),)+
                    _ => Err(format!("unknown value `{s}` (expected one of: {})", [$($name),+].join(", "))),
                }
            }
        }
    };
}
from_str_lowercase!(Mix, "embeddings" => Mix::Embeddings, "probabilities" => Mix::Probabilities);
from_str_lowercase!(ScoreMode, "global" => ScoreMode::Global, "fused" => ScoreMode::Fused);
from_str_lowercase!(Assign, "ot" => Assign::Ot, "greedy" => Assign::Greedy, "uniform" => Assign::Uniform);

/// The scoring hyperparameters of METHOD.md A4 and B3–B7.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DetectionConfig {
    /// Softmax temperature τ of every normal/abnormal probability.
    pub temperature: f32,
    /// σ of the Gaussian filter on the map (0 disables it).
    pub sigma: f32,
    /// Plan entries kept per token (K; clamped to M).
    pub top_k: usize,
    /// Entropic regularisation ε of the transport.
    pub epsilon: f32,
    /// Sinkhorn iteration cap.
    pub sinkhorn_iters: u32,
    /// Sinkhorn stops once the mean absolute change of the row scaling is below this.
    pub sinkhorn_tol: f32,
    /// How subspaces are mixed per token.
    pub mix: Mix,
    /// How the image score is formed.
    pub score: ScoreMode,
    /// How tokens are assigned to subspaces (files made before it existed: OT).
    pub assign: Assign,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        DetectionConfig {
            temperature: 0.07,
            sigma: 4.0,
            top_k: 2,
            epsilon: 0.1,
            sinkhorn_iters: 100,
            sinkhorn_tol: 1e-2,
            mix: Mix::Embeddings,
            score: ScoreMode::Global,
            assign: Assign::Ot,
        }
    }
}

impl DetectionConfig {
    fn validate(&self) -> Result<(), ModelError> {
        let ok = self.temperature.is_finite()
            && self.temperature > 0.0
            && self.sigma.is_finite()
            && self.sigma >= 0.0
            && self.top_k >= 1
            && self.epsilon.is_finite()
            && self.epsilon > 0.0
            && self.sinkhorn_iters >= 1
            && self.sinkhorn_tol.is_finite()
            && self.sinkhorn_tol >= 0.0;
        if ok {
            Ok(())
        } else {
            Err(ModelError::Config(format!(
                "detection hyperparameters out of range (need τ > 0, σ ≥ 0, K ≥ 1, ε > 0, iterations ≥ 1, tolerance ≥ 0): {self:?}"
            )))
        }
    }
}

/// Word that fills the learned context positions when prompts are tokenized (METHOD.md A3).
pub const PROMPT_PLACEHOLDER: &str = "X";

/// Shapes of the learned prompts stored as `prompt.*` (METHOD.md A3, B1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptConfig {
    /// Subspaces M (each has its own normal and abnormal contexts).
    pub subspaces: usize,
    /// Learned context tokens per prompt (12).
    pub context_tokens: usize,
    /// Text layers, after the first, whose leading positions are overwritten by deep prompts (8).
    pub deep_layers: usize,
    /// Positions each deep prompt overwrites (4).
    pub deep_tokens: usize,
    /// Text width the prompts live in.
    pub width: usize,
    /// Words after the normal prompt's context ("object.").
    pub normal_suffix: String,
    /// Words after the abnormal prompt's context ("damaged object.").
    pub abnormal_suffix: String,
}

impl PromptConfig {
    /// AnomalyCLIP's prompt shapes for `subspaces` subspaces in a text tower of `width`.
    pub fn anomalyclip(subspaces: usize, width: usize) -> Self {
        PromptConfig {
            subspaces,
            context_tokens: 12,
            deep_layers: 8,
            deep_tokens: 4,
            width,
            normal_suffix: "object.".into(),
            abnormal_suffix: "damaged object.".into(),
        }
    }
}

/// Where a model's text embeddings came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TextEmbeddingsConfig {
    /// Subspaces M: rows of `text_embeddings.normal` and `.abnormal`.
    pub subspaces: usize,
    /// A description of the source ("anomalyclip: FILE", "ensemble: object", "train", …).
    pub source: String,
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
    /// Scoring hyperparameters.
    #[serde(default)]
    pub detection: DetectionConfig,
    /// The learned prompts stored in the file, if any.
    #[serde(default)]
    pub prompts: Option<PromptConfig>,
    /// The text embeddings detection uses, if the file has them.
    #[serde(default)]
    pub text_embeddings: Option<TextEmbeddingsConfig>,
    /// The few-shot memory of normal images, if the file has one (`tokenclip reference`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub few_shot: Option<super::few_shot::FewShotConfig>,
}

impl ModelConfig {
    /// Defaults of METHOD.md A1–A2 for a CLIP: S = 518, DPAM from depth/4, the last layer.
    pub fn for_clip(clip: ClipConfig, weights: WeightDType) -> Self {
        let depth = clip.vision.layers;
        ModelConfig {
            clip,
            weights,
            input_size: 518,
            feature_layers: vec![depth],
            dpam_start: (depth / 4).max(1),
            detection: DetectionConfig::default(),
            prompts: None,
            text_embeddings: None,
            few_shot: None,
        }
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
        self.detection.validate()?;
        self.validate_prompts()?;
        if let Some(f) = &self.few_shot {
            f.validate(self)?;
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

impl ModelConfig {
    fn validate_prompts(&self) -> Result<(), ModelError> {
        let max = crate::backend::check::MAX_SUBSPACES;
        if let Some(e) = &self.text_embeddings {
            if e.subspaces == 0 || e.subspaces > max {
                return Err(ModelError::Config(format!("{} text subspaces; expected 1..={max}", e.subspaces)));
            }
        }
        let Some(p) = &self.prompts else { return Ok(()) };
        if p.subspaces == 0 || p.subspaces > max || p.context_tokens == 0 || p.width == 0 {
            return Err(ModelError::Config(format!("prompt shapes make no sense: {p:?}")));
        }
        if let Some(t) = &self.clip.text {
            if p.width != t.width {
                return Err(ModelError::Config(format!(
                    "prompts are {} wide but the text tower is {} wide: they were made for another CLIP",
                    p.width, t.width
                )));
            }
            if p.deep_layers >= t.layers || (p.deep_layers > 0 && p.deep_tokens == 0) {
                return Err(ModelError::Config(format!(
                    "{} deep prompt layers of {} tokens do not fit a {}-layer text tower",
                    p.deep_layers, p.deep_tokens, t.layers
                )));
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
