//! The training loop's state and one optimisation step (METHOD.md A5, B8): the text encoder
//! with the current prompts, the loss on cached features with the transport plan held
//! constant, the exact backward into the prompts, and Adam. The caller owns the data order,
//! progress and interruption (see `tokenclip train`); [`Trainer`] owns everything `--resume`
//! must restore, and checkpoints are written atomically.

use std::collections::BTreeMap;
use std::path::Path;

use crate::clip::config::{PromptConfig, TextEmbeddingsConfig};
use crate::clip::model_file::{
    ModelFile, PROMPT_CTX_ABNORMAL, PROMPT_CTX_NORMAL, PROMPT_DEEP, TEXT_ABNORMAL, TEXT_NORMAL,
};
use crate::clip::ModelError;
use crate::tokenclip::prompts::Prompts;
use crate::Error;

use super::adam::Adam;
use super::config::TrainConfig;
use super::loss::{loss_and_grad, LossConfig, LossTerms, TrainImage};
use super::rng::Rng;
use super::text::{PromptTensors, TextModel};

/// Where a run stands: what `--resume` restores besides the parameters and Adam's moments.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Progress {
    /// The epoch being run (0-based).
    pub epoch: usize,
    /// Batches of it already done.
    pub batch: usize,
    /// This epoch's image order.
    pub order: Vec<usize>,
    /// The shuffling generator's state after drawing `order`.
    pub rng: u64,
    /// Steps taken in total.
    pub steps: u64,
}

/// A training run in memory.
pub struct Trainer {
    /// The hyperparameters.
    pub config: TrainConfig,
    /// Where the run stands.
    pub progress: Progress,
    text: TextModel<f32>,
    prompts: Prompts,
    adam: Adam,
    loss: LossConfig,
}

/// `[ctx_normal | ctx_abnormal | deep]` flattened: the order of Adam's vectors.
fn flatten(p: &PromptTensors<f32>) -> Vec<f32> {
    [&p.ctx_normal[..], &p.ctx_abnormal, &p.deep].concat()
}

impl Trainer {
    /// The prompt shapes `config` gives for `base`'s text tower (deep layers clamped to its depth − 1).
    pub fn prompt_config(base: &ModelFile, config: &TrainConfig) -> Result<PromptConfig, Error> {
        let Some(text) = &base.config.clip.text else {
            return Err(ModelError::Unsupported {
                path: base.path().into(),
                what: "the base model has no text tower (imported with --vision-only); import the CLIP checkpoint without it"
                    .into(),
            }
            .into());
        };
        let mut p = PromptConfig::anomalyclip(config.subspaces, text.width);
        p.context_tokens = config.context_tokens;
        p.deep_layers = config.deep_layers.min(text.layers.saturating_sub(1));
        p.deep_tokens = if p.deep_layers == 0 { 0 } else { config.deep_tokens };
        Ok(p)
    }

    /// A fresh run: prompts drawn from N(0, init_std²) with the run's seed, Adam at zero.
    pub fn new(base: &ModelFile, config: TrainConfig, images: usize) -> Result<Self, Error> {
        let pc = Self::prompt_config(base, &config)?;
        let mut rng = Rng::new(config.seed);
        let mut draw =
            |n: usize| (0..n).map(|_| (rng.normal() * f64::from(config.init_std)) as f32).collect::<Vec<f32>>();
        let ctx = pc.subspaces * pc.context_tokens * pc.width;
        let (ctx_normal, ctx_abnormal) = (draw(ctx), draw(ctx));
        let deep = draw(pc.deep_layers * pc.deep_tokens * pc.width);
        let prompts = Prompts { config: pc, ctx_normal, ctx_abnormal, deep };
        let mut order: Vec<usize> = (0..images).collect();
        rng.shuffle(&mut order);
        let progress = Progress { epoch: 0, batch: 0, order, rng: rng.state, steps: 0 };
        Self::assemble(base, config, prompts, progress, None)
    }

    fn assemble(
        base: &ModelFile,
        config: TrainConfig,
        prompts: Prompts,
        progress: Progress,
        adam: Option<Adam>,
    ) -> Result<Self, Error> {
        prompts.validate()?;
        let text_cfg = base.config.clip.text.clone().ok_or_else(|| ModelError::Config("no text tower".into()))?;
        let text = TextModel::load(base, &text_cfg, &prompts.config)?;
        let len = 2 * prompts.ctx_normal.len() + prompts.deep.len();
        let adam = adam.unwrap_or_else(|| Adam::new(config.adam, len));
        if adam.m.len() != len {
            return Err(ModelError::Config(format!(
                "optimiser state holds {} values, the prompts {len}",
                adam.m.len()
            ))
            .into());
        }
        let mut loss = LossConfig::new(config.detection.clone(), base.config.input_size);
        loss.lambda_local = config.lambda_local;
        loss.lambda_orth = config.lambda_orth;
        Ok(Trainer { config, progress, text, prompts, adam, loss })
    }

    /// The current prompts.
    pub fn prompts(&self) -> &Prompts {
        &self.prompts
    }

    /// Steps per epoch for `images` images.
    pub fn batches(&self, images: usize) -> usize {
        images.div_ceil(self.config.batch.max(1))
    }

    /// The current batch's image indices, or `None` when the epoch is done.
    pub fn current_batch(&self) -> Option<&[usize]> {
        let b = self.config.batch.max(1);
        let start = self.progress.batch * b;
        (start < self.progress.order.len())
            .then(|| &self.progress.order[start..(start + b).min(self.progress.order.len())])
    }

    /// One optimisation step on `batch` (the images of [`Self::current_batch`]); advances the
    /// progress. A non-finite loss or gradient is refused before any parameter changes.
    pub fn step(&mut self, batch: &[TrainImage]) -> Result<LossTerms, Error> {
        let (out, tape) = self.text.forward(&self.prompts)?;
        let (m, d) = (self.prompts.config.subspaces, self.text.embed_dim());
        let (terms, d_n, d_a) = loss_and_grad(&out.normal, &out.abnormal, m, d, batch, &self.loss)?;
        let grads = flatten(&self.text.backward(&tape, &d_n, &d_a)?);
        if !terms.total.is_finite() || grads.iter().any(|g| !g.is_finite()) {
            return Err(ModelError::Config(format!(
                "training diverged at step {} (loss {}); the last checkpoint is kept",
                self.progress.steps + 1,
                terms.total
            ))
            .into());
        }
        let mut params = flatten(&PromptTensors::from_prompts(&self.prompts));
        let mut adam = self.adam.clone();
        adam.update(&mut params, &grads);
        if params.iter().any(|p| !p.is_finite()) {
            return Err(ModelError::Config(format!(
                "training diverged at step {}: the update made the prompts non-finite (learning rate {}); the last checkpoint is kept",
                self.progress.steps + 1,
                self.config.adam.lr
            ))
            .into());
        }
        self.adam = adam;
        let ctx = self.prompts.ctx_normal.len();
        self.prompts.ctx_normal.copy_from_slice(&params[..ctx]);
        self.prompts.ctx_abnormal.copy_from_slice(&params[ctx..2 * ctx]);
        self.prompts.deep.copy_from_slice(&params[2 * ctx..]);
        self.progress.batch += 1;
        self.progress.steps += 1;
        Ok(terms)
    }

    /// Starts the next epoch (new order) once the current one is done.
    pub fn next_epoch(&mut self) {
        let mut rng = Rng::new(self.progress.rng);
        rng.shuffle(&mut self.progress.order);
        self.progress.rng = rng.state;
        self.progress.epoch += 1;
        self.progress.batch = 0;
    }

    /// The text embeddings of the current prompts, `([M, D], [M, D])`, normalised.
    pub fn embeddings(&self) -> Result<(Vec<f32>, Vec<f32>), Error> {
        let (out, _) = self.text.forward(&self.prompts)?;
        Ok((out.normal, out.abnormal))
    }

    /// Writes the model file `out` (the base's CLIP, these prompts, their text embeddings and
    /// the run's detection settings) and the resumable state `state`, each atomically. Nothing
    /// is written if any value is non-finite.
    pub fn save(&self, base: &ModelFile, out: &Path, state: &Path) -> Result<(), Error> {
        let (normal, abnormal) = self.embeddings()?;
        let p = &self.prompts;
        if ![&normal[..], &abnormal, &p.ctx_normal, &p.ctx_abnormal, &p.deep]
            .iter()
            .all(|v| v.iter().all(|x| x.is_finite()))
        {
            return Err(ModelError::Config("non-finite prompts or embeddings: checkpoint not written".into()).into());
        }
        let mut config = base.config.clone();
        config.detection = self.config.detection.clone();
        config.prompts = Some(p.config.clone());
        config.text_embeddings = Some(TextEmbeddingsConfig {
            subspaces: p.config.subspaces,
            source: format!("train: epoch {}, step {}", self.progress.epoch, self.progress.steps),
        });
        let mut extra = BTreeMap::new();
        extra.insert(PROMPT_CTX_NORMAL.to_string(), p.ctx_normal.clone());
        extra.insert(PROMPT_CTX_ABNORMAL.to_string(), p.ctx_abnormal.clone());
        if p.config.deep_layers > 0 {
            extra.insert(PROMPT_DEEP.to_string(), p.deep.clone());
        }
        extra.insert(TEXT_NORMAL.to_string(), normal);
        extra.insert(TEXT_ABNORMAL.to_string(), abnormal);
        base.write_with(out, &config, &extra)?;
        super::state::save(state, self)?;
        Ok(())
    }

    /// Parts `state` needs to serialise.
    pub(super) fn parts(&self) -> (&Prompts, &Adam) {
        (&self.prompts, &self.adam)
    }

    /// Restores a run saved by [`Self::save`] (`state`) on the same base model.
    pub fn resume(base: &ModelFile, state: &Path) -> Result<Self, Error> {
        let (config, prompts, progress, adam) = super::state::load(state)?;
        Self::assemble(base, config, prompts, progress, Some(adam))
    }
}
