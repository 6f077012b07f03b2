//! The text encoder for prompt learning (METHOD.md A3, B1; issue 7): a forward pass on the host
//! that records a [`Tape`], and its exact backward into the learned prompt contexts and deep
//! prompts (CLIP is frozen, so only input gradients flow; no weight gradients are formed).
//!
//! Mirrors open_clip's `TextTransformer` (open_clip 3.3, `src/open_clip/transformer.py`) with
//! AnomalyCLIP's prompt insertion, exactly as [`crate::tokenclip::prompts::Prompts::encode`]
//! runs it: prompt `[SOT] X×n_ctx suffix [EOT]` encoded up to EOT, contexts in rows
//! `1 ..= n_ctx` of the token embeddings, positional embedding added, rows `1 ..= n_deep`
//! overwritten by `deep[i − 1]` before block `i` (`1 ≤ i ≤ L`), causal attention, and
//! `t = normalize(ln_final(h[EOT]) · text_projection)`.
//!
//! All `2M` prompts' rows are stacked into one matrix, so every linear layer is one GEMM over
//! all of them; attention runs per prompt and head. Generic over [`Real`]: `f32` for training,
//! `f64` for finite-difference gradient checks.

mod attention;
mod backward;
mod bench;
mod forward;
#[cfg(test)]
mod gradcheck;
mod ops;
mod random;
mod weights;

pub use bench::{bench_text_step, TextStepTiming};
pub use forward::Tape;
pub use random::RandomTextSource;
pub use weights::TextWeights;

use crate::clip::config::{PromptConfig, TextConfig};
use crate::clip::weights::TensorSource;
use crate::clip::ModelError;
use crate::tokenclip::prompts::{prompt_tokens, Prompts};
use crate::train::real::Real;
use crate::Error;

/// Prompt tensors in `T`, in the layout of [`Prompts`]; also the shape of their gradients.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptTensors<T> {
    /// Normal contexts `[M, n_ctx, W]`.
    pub ctx_normal: Vec<T>,
    /// Abnormal contexts `[M, n_ctx, W]`.
    pub ctx_abnormal: Vec<T>,
    /// Deep prompts `[L, n_deep, W]` (empty when L = 0).
    pub deep: Vec<T>,
}

/// Gradients of a scalar loss with respect to the prompts (same shapes as [`Prompts`]).
pub type PromptGrads<T> = PromptTensors<T>;

impl<T: Real> PromptTensors<T> {
    /// `p`'s tensors converted to `T` (exact for `f64`).
    pub fn from_prompts(p: &Prompts) -> Self {
        let conv = |v: &[f32]| v.iter().map(|&x| T::from_f32(x)).collect();
        PromptTensors { ctx_normal: conv(&p.ctx_normal), ctx_abnormal: conv(&p.ctx_abnormal), deep: conv(&p.deep) }
    }

    /// Zeros of the shapes `c` gives.
    pub fn zeros(c: &PromptConfig) -> Self {
        let ctx = c.subspaces * c.context_tokens * c.width;
        let deep = c.deep_layers * c.deep_tokens * c.width;
        PromptTensors { ctx_normal: vec![T::ZERO; ctx], ctx_abnormal: vec![T::ZERO; ctx], deep: vec![T::ZERO; deep] }
    }
}

/// The `2M` L2-normalised text embeddings of one forward pass.
#[derive(Debug, Clone, PartialEq)]
pub struct TextOutput<T> {
    /// Normal embeddings `[M, D]`.
    pub normal: Vec<T>,
    /// Abnormal embeddings `[M, D]`.
    pub abnormal: Vec<T>,
}

/// The frozen text tower plus the token rows of one prompt configuration's two prompts.
#[derive(Debug, Clone)]
pub struct TextModel<T> {
    weights: TextWeights<T>,
    prompts: PromptConfig,
    /// Token embedding rows of the normal prompt up to EOT, `[len, W]`.
    normal_tokens: Vec<T>,
    /// The same for the abnormal prompt.
    abnormal_tokens: Vec<T>,
}

impl<T: Real> TextModel<T> {
    /// Reads the text tower from `src` (a model file or CLIP checkpoint source with OpenAI names)
    /// and the token rows of `prompts`' normal and abnormal prompts.
    ///
    /// # Errors
    /// [`ModelError`] when a tensor is missing or misshapen, or the prompt configuration does not
    /// fit the tower: another width, no subspace, as many deep-prompt layers as text layers, or
    /// prompts that do not tokenize into the context (see [`prompt_tokens`]).
    pub fn load(src: &dyn TensorSource, text: &TextConfig, prompts: &PromptConfig) -> Result<Self, Error> {
        let weights = TextWeights::load(src, text)?;
        Self::new(weights, src, prompts)
    }

    /// [`TextModel::load`] with the tower already read; `src` supplies the token table.
    ///
    /// # Errors
    /// As [`TextModel::load`].
    pub fn new(weights: TextWeights<T>, src: &dyn TensorSource, prompts: &PromptConfig) -> Result<Self, Error> {
        let text = weights.config();
        let problem = if prompts.width != text.width {
            Some(format!("prompts are {} wide but the text tower is {} wide", prompts.width, text.width))
        } else if prompts.subspaces == 0 || prompts.context_tokens == 0 {
            Some("prompts need at least one subspace and one context token".to_string())
        } else if prompts.deep_layers >= text.layers {
            Some(format!("{} deep-prompt layers for a {}-layer text tower", prompts.deep_layers, text.layers))
        } else {
            None
        };
        if let Some(p) = problem {
            return Err(ModelError::Config(p).into());
        }
        let rows = |suffix: &str| -> Result<Vec<T>, Error> {
            let ids = prompt_tokens(prompts, suffix, text.context_length)?;
            Ok(weights::token_rows(src, text, &ids)?)
        };
        let normal_tokens = rows(&prompts.normal_suffix)?;
        let abnormal_tokens = rows(&prompts.abnormal_suffix)?;
        Ok(TextModel { weights, prompts: prompts.clone(), normal_tokens, abnormal_tokens })
    }

    /// The frozen tower.
    pub fn weights(&self) -> &TextWeights<T> {
        &self.weights
    }

    /// The prompt shapes this model encodes.
    pub fn prompt_config(&self) -> &PromptConfig {
        &self.prompts
    }

    /// The joint embedding width D.
    pub fn embed_dim(&self) -> usize {
        self.weights.embed_dim()
    }

    /// Tokens (up to and including EOT) of the normal and the abnormal prompt.
    pub fn prompt_lengths(&self) -> (usize, usize) {
        let w = self.weights.config().width;
        (self.normal_tokens.len() / w, self.abnormal_tokens.len() / w)
    }
}

#[cfg(test)]
mod tests {
    use super::gradcheck::{check, dot, randn};
    use super::*;
    use crate::train::rng::Rng;

    fn tiny(deep_layers: usize, context_tokens: usize) -> TextModel<f64> {
        let text = TextConfig {
            width: 16,
            layers: 3,
            heads: 2,
            mlp_width: 64,
            context_length: 77,
            vocab_size: 49408,
            activation: Default::default(),
        };
        let src = RandomTextSource::new(&text, 8, 11);
        let mut prompts = PromptConfig::anomalyclip(2, 16);
        prompts.context_tokens = context_tokens;
        prompts.deep_layers = deep_layers;
        prompts.deep_tokens = 2;
        TextModel::load(&src, &text, &prompts).unwrap()
    }

    fn random_prompts(model: &TextModel<f64>, rng: &mut Rng) -> PromptTensors<f64> {
        let z = PromptTensors::<f64>::zeros(model.prompt_config());
        PromptTensors {
            ctx_normal: randn(rng, z.ctx_normal.len(), 0.05),
            ctx_abnormal: randn(rng, z.ctx_abnormal.len(), 0.05),
            deep: randn(rng, z.deep.len(), 0.05),
        }
    }

    /// EOT pooling, `ln_final`, projection and L2 normalisation, from the last block's output.
    #[test]
    fn head_gradient_matches_finite_differences() {
        let model = tiny(0, 4);
        let seqs = model.layout();
        let rows = seqs.iter().map(|s| s.len).sum::<usize>();
        let mut rng = Rng::new(12);
        let x = randn(&mut rng, rows * 16, 1.0);
        let c = randn(&mut rng, seqs.len() * 8, 1.0);
        let f = |x: &[f64]| dot(&c, &model.head(x, &seqs).0);
        let (out, eot, norms) = model.head(&x, &seqs);
        let tape = Tape { seqs: seqs.clone(), blocks: Vec::new(), eot, out, norms };
        let half = c.len() / 2;
        let g = model.head_backward(&tape, &c[..half], &c[half..]);
        let err = check("head", &x, &g, f);
        eprintln!("EOT pooling + ln_final + projection + normalise: directional rel error {err:e}");
    }

    /// The whole tower, every prompt element, with and without deep prompts.
    #[test]
    fn prompt_gradients_match_finite_differences() {
        for deep_layers in [0, 2] {
            let model = tiny(deep_layers, 4);
            let mut rng = Rng::new(13);
            let p = random_prompts(&model, &mut rng);
            let c = randn(&mut rng, 4 * 8, 1.0);
            let loss = |p: &PromptTensors<f64>| {
                let (o, _) = model.forward_tensors(p).unwrap();
                dot(&c[..16], &o.normal) + dot(&c[16..], &o.abnormal)
            };
            let (_, tape) = model.forward_tensors(&p).unwrap();
            let g = model.backward(&tape, &c[..16], &c[16..]).unwrap();
            let flat = |p: &PromptTensors<f64>| [p.ctx_normal.clone(), p.ctx_abnormal.clone(), p.deep.clone()].concat();
            let (n, a) = (p.ctx_normal.len(), p.ctx_abnormal.len());
            let unflat = |x: &[f64]| PromptTensors {
                ctx_normal: x[..n].to_vec(),
                ctx_abnormal: x[n..n + a].to_vec(),
                deep: x[n + a..].to_vec(),
            };
            let err = check("text tower", &flat(&p), &flat(&g), |x| loss(&unflat(x)));
            eprintln!("text tower, {deep_layers} deep layers: directional rel error {err:e}");
            assert!(g.deep.iter().all(|v| v.abs() > 0.0), "every deep-prompt element gets a gradient");
        }
    }

    /// Wrong lengths and a tape of other shapes are errors, not panics.
    #[test]
    fn rejects_mismatched_prompts_and_gradients() {
        let model = tiny(2, 4);
        let mut rng = Rng::new(14);
        let p = random_prompts(&model, &mut rng);
        let mut short = p.clone();
        short.deep.pop();
        assert!(model.forward_tensors(&short).is_err());
        let (_, tape) = model.forward_tensors(&p).unwrap();
        assert!(model.backward(&tape, &[0.0; 15], &[0.0; 16]).is_err());
        let other = tiny(0, 5);
        let (_, other_tape) = other.forward_tensors(&PromptTensors::zeros(other.prompt_config())).unwrap();
        assert!(model.backward(&other_tape, &[0.0; 16], &[0.0; 16]).is_err());
    }
}
