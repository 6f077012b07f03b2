//! The detector: CLIP's vision tower with DPAM plus the textual subspaces, from pixels to the
//! smoothed anomaly map and the image score (METHOD.md A2–A4, B). On the GPU the whole pass is
//! recorded into one submission; nothing is read back until the outputs are.

use crate::backend::{Backend, TensorInfo};
use crate::clip::config::{DetectionConfig, ModelConfig, ScoreMode};
use crate::clip::model_file::{TEXT_ABNORMAL, TEXT_NORMAL};
use crate::clip::vision::{VisionOutput, VisionTower};
use crate::clip::weights::{TensorSource, Weights};
use crate::clip::ModelError;
use crate::Error;

use super::few_shot::FewShotMemory;
use super::prompts::TextEmbeddings;
use super::scoring;
use super::subspaces::TextSpace;
use super::transport::{assign, Assignment};

/// One image's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// The image score (per the model's score mode).
    pub score: f32,
    /// The global score alone.
    pub global_score: f32,
    /// Maximum of the smoothed map.
    pub map_max: f32,
    /// Maximum of the few-shot map alone, when a memory of normal images is in use.
    pub few_shot_max: Option<f32>,
    /// The smoothed anomaly map, `size × size`, row-major.
    pub map: Vec<f32>,
    /// Side of the map (the model's input size S).
    pub size: usize,
}

/// Every stage of one feature layer (for tests and inspection).
pub struct LayerStages<B: Backend> {
    /// Patch embeddings `[N, D]`.
    pub patches: B::Tensor,
    /// Cost, plan and weights.
    pub assignment: Assignment<B>,
    /// Token probabilities `[N]`.
    pub probabilities: B::Tensor,
}

/// All device tensors of one pass.
pub struct DetectionTensors<B: Backend> {
    /// Per feature layer, in the configured order.
    pub layers: Vec<LayerStages<B>>,
    /// Global embedding `[1, D]`.
    pub global: B::Tensor,
    /// Global score `[1]`.
    pub global_score: B::Tensor,
    /// Map before smoothing `[1, S, S]`.
    pub raw_map: B::Tensor,
    /// Smoothed map `[1, S, S]` (with the few-shot map added when a memory is in use).
    pub map: B::Tensor,
    /// The few-shot map alone `[1, S, S]` and its maximum `[1]`, when a memory is in use.
    pub few_shot: Option<(B::Tensor, B::Tensor)>,
}

/// The stages of a pass, reported to [`Detector::forward_observed`]'s hook as each is recorded
/// (on the CPU, as each finishes: its ops run eagerly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The vision tower with DPAM: patch and global embeddings.
    Encoder,
    /// Cost, Sinkhorn, top-K and token probabilities for every feature layer.
    Transport,
    /// The few-shot map (only with a memory).
    FewShot,
    /// Upsampling, smoothing and the image score.
    PostProcessing,
}

/// A loaded detector on one backend.
pub struct Detector<B: Backend> {
    config: ModelConfig,
    vision: VisionTower<B>,
    space: TextSpace<B>,
    few_shot: Option<FewShotMemory<B>>,
}

impl<B: Backend> Detector<B> {
    /// Loads the vision tower and the text embeddings of a validated model file (the text tower,
    /// if present, is not needed and not loaded).
    ///
    /// # Errors
    /// [`ModelError::NoTextEmbeddings`] for a file made without `--prompts`.
    pub fn load(src: &dyn TensorSource, config: &ModelConfig, be: &B) -> Result<Self, Error> {
        let Some(te) = &config.text_embeddings else {
            return Err(ModelError::NoTextEmbeddings { path: src.source_name().into() }.into());
        };
        let read = |name: &str| src.read_raw(name).and_then(|r| r.to_f32());
        let emb = TextEmbeddings {
            normal: read(TEXT_NORMAL)?,
            abnormal: read(TEXT_ABNORMAL)?,
            subspaces: te.subspaces,
            dim: config.clip.embed_dim,
        };
        Self::with_embeddings(src, config, &emb, be)
    }

    /// Loads the vision tower of `src` and uses `emb` as the text embeddings.
    pub fn with_embeddings(
        src: &dyn TensorSource,
        config: &ModelConfig,
        emb: &TextEmbeddings,
        be: &B,
    ) -> Result<Self, Error> {
        let w = Weights::new(src, be);
        let vision = VisionTower::load(&w.pp("visual"), &config.clip.vision)?;
        let space = TextSpace::new(be, emb)?;
        let few_shot = FewShotMemory::load(src, be, config)?;
        Ok(Detector { config: config.clone(), vision, space, few_shot })
    }

    /// Uses `memory` for few-shot scoring from now on (`None`: zero-shot again); the config
    /// reports it.
    pub fn set_few_shot(&mut self, memory: Option<FewShotMemory<B>>) {
        self.config.few_shot = memory.as_ref().map(|m| m.config.clone());
        self.few_shot = memory;
    }

    /// The patch embeddings `[N, D]` of `layers` (1-indexed, tapped where the feature layers are)
    /// of a preprocessed image, read back: what a few-shot memory is built from.
    pub async fn patch_embeddings(&self, be: &B, pixels: &[f32], layers: &[usize]) -> Result<Vec<Vec<f32>>, Error> {
        let size = self.input_size();
        let x = be.upload(pixels, &[3, size, size])?;
        let out = self.vision.forward(be, &x, self.config.dpam_start, layers)?;
        let mut layers = Vec::with_capacity(out.patches.len());
        for p in &out.patches {
            layers.push(be.read(p).await?);
        }
        Ok(layers)
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The input side S images are squashed to.
    pub fn input_size(&self) -> usize {
        self.config.input_size
    }

    /// Records one pass over a preprocessed image `[3, S, S]`.
    pub fn forward(&self, be: &B, pixels: &B::Tensor) -> Result<DetectionTensors<B>, Error> {
        self.forward_observed(be, pixels, &mut |_| {})
    }

    /// [`Self::forward`], calling `observe` after each [`Stage`] (for timing).
    pub fn forward_observed(
        &self,
        be: &B,
        pixels: &B::Tensor,
        observe: &mut dyn FnMut(Stage),
    ) -> Result<DetectionTensors<B>, Error> {
        let mut out = self.forward_batch_observed(be, std::slice::from_ref(pixels), observe)?;
        out.pop()
            .ok_or_else(|| crate::BackendError::InvalidArgument { op: "detect", message: "no output".into() }.into())
    }

    /// Records one pass over several preprocessed images `[3, S, S]`: the vision tower runs them
    /// as one batch, the rest per image. Each image's tensors are its single pass's.
    pub fn forward_batch(&self, be: &B, pixels: &[B::Tensor]) -> Result<Vec<DetectionTensors<B>>, Error> {
        self.forward_batch_observed(be, pixels, &mut |_| {})
    }

    /// [`Self::forward_batch`], calling `observe` after each [`Stage`] (once for the batch's
    /// encoder, then per image).
    fn forward_batch_observed(
        &self,
        be: &B,
        pixels: &[B::Tensor],
        observe: &mut dyn FnMut(Stage),
    ) -> Result<Vec<DetectionTensors<B>>, Error> {
        let cfg = &self.config;
        let size = cfg.input_size;
        if let Some(bad) = pixels.iter().find(|p| p.shape() != [3, size, size]) {
            return Err(crate::BackendError::ShapeMismatch {
                op: "detect",
                operand: "pixels",
                expected: format!("[3, {size}, {size}]"),
                got: bad.shape().to_vec(),
            }
            .into());
        }
        let taps = self.taps();
        let outs = self.vision.forward_batch(be, pixels, cfg.dpam_start, &taps)?;
        observe(Stage::Encoder);
        outs.into_iter().map(|out| self.head(be, out, &taps, &cfg.detection, observe)).collect()
    }

    /// The layers the encoder taps: the feature layers, then any few-shot layer that is not one.
    fn taps(&self) -> Vec<usize> {
        let cfg = &self.config;
        let mut taps = cfg.feature_layers.clone();
        if let Some(m) = &self.few_shot {
            taps.extend(m.layers().into_iter().filter(|l| !cfg.feature_layers.contains(l)));
        }
        taps
    }

    /// Detects on one preprocessed image under each of `settings` (the model's own detection
    /// settings with others for transport and scoring: what a sweep evaluates). The encoder runs
    /// once; each setting's result equals a detector loaded with that setting.
    pub async fn detect_settings(
        &self,
        be: &B,
        pixels: &[f32],
        settings: &[DetectionConfig],
    ) -> Result<Vec<Detection>, Error> {
        let size = self.input_size();
        let x = be.upload(pixels, &[3, size, size])?;
        let taps = self.taps();
        let out = self.vision.forward(be, &x, self.config.dpam_start, &taps)?;
        let mut results = Vec::with_capacity(settings.len());
        for det in settings {
            let out = VisionOutput { global: out.global.clone(), patches: out.patches.clone() };
            let t = self.head(be, out, &taps, det, &mut |_| {})?;
            results.push(self.read_detection(be, &t, det).await?);
        }
        Ok(results)
    }

    /// Everything after the encoder for one image: transport and token scores per feature layer,
    /// the few-shot map, the smoothed map and the global score.
    fn head(
        &self,
        be: &B,
        out: VisionOutput<B>,
        taps: &[usize],
        det: &DetectionConfig,
        observe: &mut dyn FnMut(Stage),
    ) -> Result<DetectionTensors<B>, Error> {
        let cfg = &self.config;
        let size = cfg.input_size;
        let grid = size / cfg.clip.vision.patch_size;
        be.scope(format_args!("transport"));
        let mut layers = Vec::with_capacity(cfg.feature_layers.len());
        for patches in out.patches.iter().take(cfg.feature_layers.len()).cloned() {
            let assignment = assign(be, &patches, &self.space, det)?;
            let probabilities = scoring::token_probabilities(be, &patches, &assignment.weights, &self.space, det)?;
            layers.push(LayerStages { patches, assignment, probabilities });
        }
        observe(Stage::Transport);
        let mut few_shot = None;
        if let Some(memory) = &self.few_shot {
            be.scope(format_args!("few-shot"));
            let fs = memory.map(be, taps, &out.patches, grid, size, det.sigma)?;
            let top = be.row_max(&be.reshape(&fs, &[1, size * size])?)?;
            few_shot = Some((fs, top, memory.config.weight));
            observe(Stage::FewShot);
        }
        be.scope(format_args!("post-processing"));
        let probs: Vec<B::Tensor> = layers.iter().map(|l| l.probabilities.clone()).collect();
        let raw_map = scoring::raw_map(be, &probs, (grid, grid), size)?;
        let mut map = scoring::smooth(be, &raw_map, det.sigma)?;
        let few_shot = match few_shot {
            Some((fs, top, weight)) => {
                map = be.add(&map, &be.scale(&fs, weight)?)?;
                Some((fs, top))
            }
            None => None,
        };
        let global_score = scoring::global_score(be, &out.global, &self.space, det)?;
        observe(Stage::PostProcessing);
        Ok(DetectionTensors { layers, global: out.global, global_score, raw_map, map, few_shot })
    }

    /// Detects on a preprocessed image (`3 × S × S` values, channel-major) and reads the
    /// outputs back.
    pub async fn detect(&self, be: &B, pixels: &[f32]) -> Result<Detection, Error> {
        let mut out = self.detect_batch(be, &[pixels]).await?;
        out.pop()
            .ok_or_else(|| crate::BackendError::InvalidArgument { op: "detect", message: "no output".into() }.into())
    }

    /// Detects on several preprocessed images in one batched pass ([`Self::forward_batch`]);
    /// the results are in the images' order, each what [`Self::detect`] gives for it alone.
    pub async fn detect_batch(&self, be: &B, images: &[&[f32]]) -> Result<Vec<Detection>, Error> {
        let size = self.input_size();
        let xs: Vec<B::Tensor> = images.iter().map(|p| be.upload(p, &[3, size, size])).collect::<Result<_, _>>()?;
        let mut results = Vec::with_capacity(images.len());
        for t in self.forward_batch(be, &xs)? {
            results.push(self.read_detection(be, &t, &self.config.detection).await?);
        }
        Ok(results)
    }

    /// Reads one pass's outputs back and forms the image score.
    async fn read_detection(&self, be: &B, t: &DetectionTensors<B>, det: &DetectionConfig) -> Result<Detection, Error> {
        let size = self.input_size();
        let map = be.read(&t.map).await?;
        let global_score = be.read(&t.global_score).await?.first().copied().unwrap_or(f32::NAN);
        let map_max = map.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut score = match det.score {
            ScoreMode::Global => global_score,
            ScoreMode::Fused => 0.5 * (global_score + map_max),
        };
        let mut few_shot_max = None;
        if let Some((_, top)) = &t.few_shot {
            let top = be.read(top).await?.first().copied().unwrap_or(f32::NAN);
            if self.config.few_shot.as_ref().is_some_and(|f| f.image_score) {
                score = 0.5 * (score + top);
            }
            few_shot_max = Some(top);
        }
        Ok(Detection { score, global_score, map_max, few_shot_max, map, size })
    }
}
