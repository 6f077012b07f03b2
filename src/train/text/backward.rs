//! The exact backward pass of the text encoder into the prompts (METHOD.md A3): L2 normalisation,
//! projection, `ln_final`, EOT pooling, then the blocks in reverse; a deep prompt's rows take the
//! gradient arriving at the rows it overwrote (summed over all prompts), which therefore does not
//! reach the hidden rows underneath; the contexts take the gradient of their embedding rows.

use crate::clip::ModelError;
use crate::train::real::Real;
use crate::Error;

use super::attention::{attention_backward, Seq};
use super::forward::{BlockTape, Scratch, Tape};
use super::ops::{
    gelu_backward, l2_normalize_backward, layer_norm_backward, linear_backward, matmul, quick_gelu_backward, Rhs,
};
use super::weights::Block;
use super::{PromptGrads, TextModel};
use crate::clip::config::{Activation, TextConfig};

impl<T: Real> TextModel<T> {
    /// Gradients of a scalar loss with respect to the prompts, given its gradients `d_normal`,
    /// `d_abnormal` with respect to the normalised embeddings of the forward pass that made `tape`.
    ///
    /// # Shapes
    /// `d_normal`, `d_abnormal`: `[M, D]`. Output: the prompts' shapes.
    ///
    /// # Errors
    /// [`ModelError::Config`] when a gradient has another length than `[M, D]` or `tape` comes
    /// from a model of other shapes.
    pub fn backward(&self, tape: &Tape<T>, d_normal: &[T], d_abnormal: &[T]) -> Result<PromptGrads<T>, Error> {
        let c = self.weights.config();
        let (w, d, m) = (c.width, self.embed_dim(), self.prompts.subspaces);
        let seqs = self.layout();
        if d_normal.len() != m * d || d_abnormal.len() != m * d {
            return Err(ModelError::Config(format!(
                "embedding gradients have {} and {} elements, expected [{m}, {d}]",
                d_normal.len(),
                d_abnormal.len()
            ))
            .into());
        }
        if tape.seqs != seqs || tape.blocks.len() != c.layers || tape.out.len() != 2 * m * d {
            return Err(ModelError::Config("the tape was recorded by a text model of other shapes".into()).into());
        }
        let rows = seqs.iter().map(|s| s.len).sum::<usize>();
        let mut dx = self.head_backward(tape, d_normal, d_abnormal);
        let mut grads = PromptGrads::zeros(&self.prompts);
        let mut scratch = Scratch::new(rows, w, c.mlp_width);
        let mut dqkv = vec![T::ZERO; rows * 3 * w];
        let span = self.prompts.deep_tokens * w;
        for (i, (block, bt)) in self.weights.blocks.iter().zip(&tape.blocks).enumerate().rev() {
            block_backward(block, bt, &mut dx, &seqs, c, &mut scratch, &mut dqkv);
            if let Some(g) = i.checked_sub(1).and_then(|j| grads.deep.get_mut(j * span..(j + 1) * span)) {
                for s in &seqs {
                    let rows = &mut dx[(s.start + 1) * w..(s.start + 1) * w + span];
                    g.iter_mut().zip(rows.iter_mut()).for_each(|(g, r)| {
                        *g += *r;
                        *r = T::ZERO;
                    });
                }
            }
        }
        let span = self.prompts.context_tokens * w;
        for (i, s) in seqs.iter().enumerate() {
            let (ctx, j) = if i < m { (&mut grads.ctx_normal, i) } else { (&mut grads.ctx_abnormal, i - m) };
            ctx[j * span..(j + 1) * span].copy_from_slice(&dx[(s.start + 1) * w..(s.start + 1) * w + span]);
        }
        Ok(grads)
    }

    /// From the embeddings' gradients to the gradient of the last block's output `[rows, W]`
    /// (non-zero only at the EOT rows).
    pub(super) fn head_backward(&self, tape: &Tape<T>, d_normal: &[T], d_abnormal: &[T]) -> Vec<T> {
        let (w, d, p) = (self.weights.config().width, self.embed_dim(), tape.seqs.len());
        let mut dy = [d_normal, d_abnormal].concat();
        l2_normalize_backward(&tape.out, &tape.norms, d, &mut dy);
        let mut dnormed = vec![T::ZERO; p * w];
        matmul(&dy, &self.weights.projection, Rhs::Transposed, p, d, w, &mut dnormed, false);
        let mut dh = vec![T::ZERO; p * w];
        layer_norm_backward(&dnormed, &tape.eot, &self.weights.ln_final.weight, &mut dh);
        let rows = tape.seqs.iter().map(|s| s.len).sum::<usize>();
        let mut dx = vec![T::ZERO; rows * w];
        for (s, g) in tape.seqs.iter().zip(dh.chunks_exact(w)) {
            dx[(s.start + s.len - 1) * w..(s.start + s.len) * w].copy_from_slice(g);
        }
        dx
    }
}

/// One block's input gradient in place: `dx` holds the gradient of the block's output on entry
/// and of its input on return.
fn block_backward<T: Real>(
    b: &Block<T>,
    t: &BlockTape<T>,
    dx: &mut [T],
    seqs: &[Seq],
    c: &TextConfig,
    s: &mut Scratch<T>,
    dqkv: &mut [T],
) {
    let w = b.ln_1.weight.len();
    // x₂ = x₁ + c_proj(act(c_fc(ln_2 x₁)))
    linear_backward(&b.c_proj, dx, &mut s.g, false);
    match c.activation {
        Activation::QuickGelu => quick_gelu_backward(&t.fc, &mut s.g),
        Activation::Gelu => gelu_backward(&t.fc, &mut s.g),
    }
    linear_backward(&b.c_fc, &s.g, &mut s.a, false);
    layer_norm_backward(&s.a, &t.ln_2, &b.ln_2.weight, dx);
    // x₁ = x + out_proj(attn(ln_1 x))
    linear_backward(&b.out_proj, dx, &mut s.o, false);
    attention_backward(&t.qkv, &t.probs, &s.o, seqs, w, c.heads, dqkv);
    linear_backward(&b.in_proj, dqkv, &mut s.a, false);
    layer_norm_backward(&s.a, &t.ln_1, &b.ln_1.weight, dx);
}
