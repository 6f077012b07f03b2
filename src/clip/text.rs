//! The text tower (open_clip `TextTransformer` in the OpenAI layout, METHOD.md A3): token and
//! positional embeddings, causal residual blocks, `ln_final` and the projection at EOT.
//!
//! The transformer is causal, so positions after EOT never influence it: a text is encoded only
//! up to its EOT token, which gives open_clip's result exactly at a fraction of the cost.

use crate::backend::{AttentionMask, BLayout, Backend, BackendError};
use crate::Error;

use super::config::TextConfig;
use super::tokenizer::eot_position;
use super::transformer::{load_blocks, LayerNorm, ResidualBlock};
use super::weights::{RawTensor, Weights};
use super::ModelError;

/// The text tower's weights; the token table stays on the host (only a text's rows are uploaded).
pub struct TextTower<B: Backend> {
    cfg: TextConfig,
    token_embedding: RawTensor,
    positional: B::Tensor,
    /// The residual blocks, in order.
    pub blocks: Vec<ResidualBlock<B>>,
    ln_final: LayerNorm<B>,
    text_projection: B::Tensor,
}

impl<B: Backend> TextTower<B> {
    /// Loads the text tensors (`w` is the root view: the OpenAI layout has no `text.` prefix).
    pub fn load(w: &Weights<'_, B>, cfg: &TextConfig) -> Result<Self, Error> {
        Ok(TextTower {
            cfg: cfg.clone(),
            token_embedding: w.raw("token_embedding.weight")?,
            positional: w.tensor("positional_embedding")?,
            blocks: load_blocks(&w.pp("transformer"), cfg.layers, cfg.heads, cfg.activation)?,
            ln_final: LayerNorm::load(&w.pp("ln_final"))?,
            text_projection: w.tensor("text_projection")?,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &TextConfig {
        &self.cfg
    }

    /// Token embedding rows for `ids` (`[len, W]`, f32, on the host).
    pub fn token_rows(&self, ids: &[u32]) -> Result<Vec<f32>, Error> {
        let w = self.cfg.width;
        let elem = self.token_embedding.dtype.size() as usize;
        let mut out = Vec::with_capacity(ids.len() * w);
        for &id in ids {
            let id = id as usize;
            if id >= self.cfg.vocab_size {
                return Err(ModelError::Config(format!(
                    "token id {id} outside the vocabulary of {}",
                    self.cfg.vocab_size
                ))
                .into());
            }
            let bytes = &self.token_embedding.bytes[id * w * elem..(id + 1) * w * elem];
            let row = super::safetensors::to_f32(self.token_embedding.dtype, bytes)
                .ok_or_else(|| ModelError::Config("token table is not a float tensor".into()))?;
            out.extend_from_slice(&row);
        }
        Ok(out)
    }

    /// open_clip's `encode_text` for one tokenized text (padded or not): `[1, D]`, not normalised.
    pub fn encode_tokens(&self, be: &B, ids: &[u32]) -> Result<B::Tensor, Error> {
        if ids.is_empty() || ids.len() > self.cfg.context_length {
            return Err(BackendError::InvalidArgument {
                op: "encode_text",
                message: format!("{} tokens; expected 1..={}", ids.len(), self.cfg.context_length),
            }
            .into());
        }
        let len = eot_position(ids) + 1;
        let x = be.upload(&self.token_rows(&ids[..len])?, &[len, self.cfg.width])?;
        self.encode_embeddings(be, &x)
    }

    /// The tower from token embeddings `[T, W]` whose last row is the EOT token: `[1, D]`.
    pub fn encode_embeddings(&self, be: &B, x: &B::Tensor) -> Result<B::Tensor, Error> {
        self.encode_prompted(be, x, &[])
    }

    /// The tower with AnomalyCLIP's deep prompts (METHOD.md A3): before block `i` (0-indexed,
    /// `1 ≤ i ≤ deep.len()`) the hidden rows `1 .. 1 + n` are replaced by `deep[i − 1]` (`[n, W]`).
    ///
    /// # Shapes
    /// `x`: `[T, W]` token embeddings, EOT last; each of `deep`: `[n, W]` with `1 + n < T`.
    /// Output: `[1, D]`, not normalised.
    pub fn encode_prompted(&self, be: &B, x: &B::Tensor, deep: &[B::Tensor]) -> Result<B::Tensor, Error> {
        let len = crate::backend::TensorInfo::shape(x).first().copied().unwrap_or(0);
        if deep.len() >= self.blocks.len() {
            return Err(BackendError::InvalidArgument {
                op: "encode_text",
                message: format!("{} deep prompts for a {}-layer text tower", deep.len(), self.blocks.len()),
            }
            .into());
        }
        let mut x = be.add(x, &be.slice_rows(&self.positional, 0, len)?)?;
        for (i, block) in self.blocks.iter().enumerate() {
            if let Some(prompt) = i.checked_sub(1).and_then(|j| deep.get(j)) {
                x = overwrite_rows(be, &x, prompt)?;
            }
            x = block.forward(be, &x, AttentionMask::Causal)?;
        }
        let eot = self.ln_final.forward(be, &be.slice_rows(&x, len - 1, 1)?)?;
        Ok(be.matmul(&eot, &self.text_projection, None, BLayout::RowMajor)?)
    }
}

/// `x` with rows `1 .. 1 + n` replaced by `rows` (`[n, W]`); row 0 and the rest are kept.
fn overwrite_rows<B: Backend>(be: &B, x: &B::Tensor, rows: &B::Tensor) -> Result<B::Tensor, Error> {
    use crate::backend::TensorInfo;
    let (len, n) = (x.shape()[0], rows.shape()[0]);
    if 1 + n >= len {
        return Err(BackendError::InvalidArgument {
            op: "encode_text",
            message: format!("a deep prompt of {n} tokens does not fit a {len}-token text"),
        }
        .into());
    }
    let head = be.concat_rows(&be.slice_rows(x, 0, 1)?, rows)?;
    Ok(be.concat_rows(&head, &be.slice_rows(x, 1 + n, len - 1 - n)?)?)
}
