//! The forward pass over all `2M` prompts with its [`Tape`] (METHOD.md A3).

use crate::clip::ModelError;
use crate::tokenclip::prompts::Prompts;
use crate::train::real::Real;
use crate::Error;

use super::attention::{attention, probs_len, Seq};
use super::ops::{gelu, l2_normalize, layer_norm, linear, matmul, quick_gelu, NormTape, Rhs, LAYER_NORM_EPS};
use super::weights::Block;
use super::{PromptTensors, TextModel, TextOutput};
use crate::clip::config::Activation;

/// What one residual block's backward needs.
#[derive(Debug, Clone)]
pub(super) struct BlockTape<T> {
    pub ln_1: NormTape<T>,
    /// `[rows, 3W]`.
    pub qkv: Vec<T>,
    /// Softmax per prompt, `[heads, len, len]` each.
    pub probs: Vec<T>,
    pub ln_2: NormTape<T>,
    /// `c_fc`'s output before QuickGELU, `[rows, mlp_width]`.
    pub fc: Vec<T>,
}

/// The activations a forward pass keeps for [`TextModel::backward`]; valid only with the model
/// that made it.
#[derive(Debug, Clone)]
pub struct Tape<T> {
    /// Normal prompts `0 .. M`, then abnormal prompts.
    pub(super) seqs: Vec<Seq>,
    pub(super) blocks: Vec<BlockTape<T>>,
    /// `ln_final` of the EOT rows, `[2M, W]`.
    pub(super) eot: NormTape<T>,
    /// The normalised embeddings, `[2M, D]`.
    pub(super) out: Vec<T>,
    /// Their norms before normalising, `[2M]`.
    pub(super) norms: Vec<T>,
}

/// Buffers reused across blocks.
pub(super) struct Scratch<T> {
    /// `[rows, W]`: a norm's output or a gradient.
    pub a: Vec<T>,
    /// `[rows, W]`: attention's output or its gradient.
    pub o: Vec<T>,
    /// `[rows, mlp_width]`.
    pub g: Vec<T>,
}

impl<T: Real> Scratch<T> {
    pub fn new(rows: usize, width: usize, mlp: usize) -> Self {
        Scratch { a: vec![T::ZERO; rows * width], o: vec![T::ZERO; rows * width], g: vec![T::ZERO; rows * mlp] }
    }
}

impl<T: Real> TextModel<T> {
    /// Encodes every prompt: `M` normal and `M` abnormal L2-normalised embeddings, and the tape.
    ///
    /// # Shapes
    /// Output: `normal`, `abnormal` `[M, D]`.
    ///
    /// # Errors
    /// [`ModelError::Config`] when `prompts` are invalid or have another configuration than the
    /// one this model was loaded for.
    pub fn forward(&self, prompts: &Prompts) -> Result<(TextOutput<T>, Tape<T>), Error> {
        prompts.validate()?;
        if prompts.config != self.prompts {
            return Err(ModelError::Config(format!(
                "prompts have configuration {:?} but the text model was loaded for {:?}",
                prompts.config, self.prompts
            ))
            .into());
        }
        self.forward_tensors(&PromptTensors::from_prompts(prompts))
    }

    /// [`TextModel::forward`] on prompt tensors in `T` (the configuration is the model's).
    ///
    /// # Shapes
    /// `p`: the prompts' shapes (`[M, n_ctx, W]` twice, `[L, n_deep, W]`). Output: `[M, D]` twice.
    ///
    /// # Errors
    /// [`ModelError::Config`] when a tensor's length does not match the configuration.
    pub fn forward_tensors(&self, p: &PromptTensors<T>) -> Result<(TextOutput<T>, Tape<T>), Error> {
        self.check_lengths(p, "prompt")?;
        let c = self.weights.config();
        let (w, heads) = (c.width, c.heads);
        let seqs = self.layout();
        let rows = seqs.iter().map(|s| s.len).sum();
        let mut x = self.embed(p, &seqs);
        let mut scratch = Scratch::new(rows, w, c.mlp_width);
        let mut blocks = Vec::with_capacity(c.layers);
        let span = self.prompts.deep_tokens * w;
        for (i, block) in self.weights.blocks.iter().enumerate() {
            if let Some(deep) = i.checked_sub(1).and_then(|j| p.deep.get(j * span..(j + 1) * span)) {
                for s in &seqs {
                    x[(s.start + 1) * w..(s.start + 1) * w + span].copy_from_slice(deep);
                }
            }
            blocks.push(block_forward(block, &mut x, &seqs, heads, c.activation, &mut scratch));
        }
        let (out, eot, norms) = self.head(&x, &seqs);
        let half = self.prompts.subspaces * self.embed_dim();
        let output = TextOutput { normal: out[..half].to_vec(), abnormal: out[half..].to_vec() };
        Ok((output, Tape { seqs, blocks, eot, out, norms }))
    }

    /// Errors unless `p`'s tensors have the configured lengths.
    pub(super) fn check_lengths(&self, p: &PromptTensors<T>, what: &str) -> Result<(), ModelError> {
        let want = PromptTensors::<T>::zeros(&self.prompts);
        let got = [p.ctx_normal.len(), p.ctx_abnormal.len(), p.deep.len()];
        if got != [want.ctx_normal.len(), want.ctx_abnormal.len(), want.deep.len()] {
            return Err(ModelError::Config(format!(
                "{what} tensors have {got:?} elements, expected {:?} for {:?}",
                [want.ctx_normal.len(), want.ctx_abnormal.len(), want.deep.len()],
                self.prompts
            )));
        }
        Ok(())
    }

    /// The stacked rows: `M` normal prompts, then `M` abnormal ones.
    pub(super) fn layout(&self) -> Vec<Seq> {
        let (n, a) = self.prompt_lengths();
        let m = self.prompts.subspaces;
        let lens = std::iter::repeat_n(n, m).chain(std::iter::repeat_n(a, m));
        let mut start = 0;
        lens.map(|len| {
            let s = Seq { start, len };
            start += len;
            s
        })
        .collect()
    }

    /// Token rows with the contexts in rows `1 ..= n_ctx`, plus the positional embedding.
    fn embed(&self, p: &PromptTensors<T>, seqs: &[Seq]) -> Vec<T> {
        let (w, m) = (self.weights.config().width, self.prompts.subspaces);
        let span = self.prompts.context_tokens * w;
        let mut x = vec![T::ZERO; seqs.iter().map(|s| s.len).sum::<usize>() * w];
        for (i, s) in seqs.iter().enumerate() {
            let (tokens, ctx, j) = if i < m {
                (&self.normal_tokens, &p.ctx_normal, i)
            } else {
                (&self.abnormal_tokens, &p.ctx_abnormal, i - m)
            };
            let dst = &mut x[s.start * w..(s.start + s.len) * w];
            dst.copy_from_slice(tokens);
            dst[w..w + span].copy_from_slice(&ctx[j * span..(j + 1) * span]);
            dst.iter_mut().zip(&self.weights.positional).for_each(|(v, &pos)| *v += pos);
        }
        x
    }

    /// `ln_final` of each prompt's EOT row, the projection and the L2 normalisation.
    pub(super) fn head(&self, x: &[T], seqs: &[Seq]) -> (Vec<T>, NormTape<T>, Vec<T>) {
        let (w, d, p) = (self.weights.config().width, self.embed_dim(), seqs.len());
        let h: Vec<T> =
            seqs.iter().flat_map(|s| &x[(s.start + s.len - 1) * w..(s.start + s.len) * w]).copied().collect();
        let ln = &self.weights.ln_final;
        let mut normed = vec![T::ZERO; p * w];
        let eot = layer_norm(&h, &ln.weight, &ln.bias, T::from_f64(LAYER_NORM_EPS), &mut normed);
        let mut out = vec![T::ZERO; p * d];
        matmul(&normed, &self.weights.projection, Rhs::Plain, p, w, d, &mut out, false);
        let norms = l2_normalize(&mut out, d);
        (out, eot, norms)
    }
}

/// One residual block in place on the stacked rows `x` (`[rows, W]`), recording its tape.
fn block_forward<T: Real>(
    b: &Block<T>,
    x: &mut [T],
    seqs: &[Seq],
    heads: usize,
    activation: Activation,
    s: &mut Scratch<T>,
) -> BlockTape<T> {
    let w = b.ln_1.weight.len();
    let rows = x.len() / w;
    let eps = T::from_f64(LAYER_NORM_EPS);
    let ln_1 = layer_norm(x, &b.ln_1.weight, &b.ln_1.bias, eps, &mut s.a);
    let mut qkv = vec![T::ZERO; rows * 3 * w];
    linear(&b.in_proj, &s.a, &mut qkv, false);
    let mut probs = vec![T::ZERO; probs_len(seqs, heads)];
    attention(&qkv, seqs, w, heads, &mut s.o, &mut probs);
    linear(&b.out_proj, &s.o, x, true);
    let ln_2 = layer_norm(x, &b.ln_2.weight, &b.ln_2.bias, eps, &mut s.a);
    let mut fc = vec![T::ZERO; rows * b.c_fc.bias.len()];
    linear(&b.c_fc, &s.a, &mut fc, false);
    match activation {
        Activation::QuickGelu => quick_gelu(&fc, &mut s.g),
        Activation::Gelu => gelu(&fc, &mut s.g),
    }
    linear(&b.c_proj, &s.g, x, true);
    BlockTape { ln_1, qkv, probs, ln_2, fc }
}
