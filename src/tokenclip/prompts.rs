//! Learned prompts and their text embeddings (METHOD.md A3, B1, C).
//!
//! A prompt is `[SOT] X … X object. [EOT]` (normal) or `[SOT] X … X damaged object. [EOT]`
//! (abnormal) whose placeholder rows are replaced by learned contexts, one pair per subspace;
//! the deep prompts overwrite positions `1 ..= n` before text layers `2 ..= L + 1`. Encoding runs
//! the text tower once per prompt, up to EOT (exact, since the tower is causal).

use crate::backend::Backend;
use crate::clip::config::{PromptConfig, PROMPT_PLACEHOLDER};
use crate::clip::text::TextTower;
use crate::clip::tokenizer::Tokenizer;
use crate::clip::ModelError;
use crate::Error;

/// Learned prompts on the host, in the layout of the model file's `prompt.*` tensors.
#[derive(Debug, Clone, PartialEq)]
pub struct Prompts {
    /// Their shapes.
    pub config: PromptConfig,
    /// Normal contexts `[M, n_ctx, W]`.
    pub ctx_normal: Vec<f32>,
    /// Abnormal contexts `[M, n_ctx, W]`.
    pub ctx_abnormal: Vec<f32>,
    /// Deep prompts `[L, n_deep, W]` (empty when L = 0).
    pub deep: Vec<f32>,
}

/// L2-normalised text embeddings, one row per subspace (what inference uses).
#[derive(Debug, Clone, PartialEq)]
pub struct TextEmbeddings {
    /// Normal embeddings `[M, D]`.
    pub normal: Vec<f32>,
    /// Abnormal embeddings `[M, D]`.
    pub abnormal: Vec<f32>,
    /// Rows M.
    pub subspaces: usize,
    /// Width D.
    pub dim: usize,
}

/// Divides `v` by its L2 norm (`x / x.norm()`, as AnomalyCLIP normalises text features).
pub fn normalize(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
}

impl Prompts {
    /// Checks the tensor lengths against the shapes.
    pub fn validate(&self) -> Result<(), ModelError> {
        let c = &self.config;
        let ctx = c.subspaces * c.context_tokens * c.width;
        let deep = c.deep_layers * c.deep_tokens * c.width;
        let finite = |v: &[f32]| v.iter().all(|x| x.is_finite());
        if self.ctx_normal.len() != ctx || self.ctx_abnormal.len() != ctx || self.deep.len() != deep {
            return Err(ModelError::Config(format!("prompt tensors do not match their shapes {c:?}")));
        }
        if !(finite(&self.ctx_normal) && finite(&self.ctx_abnormal) && finite(&self.deep)) {
            return Err(ModelError::Config("prompt tensors hold non-finite values".into()));
        }
        Ok(())
    }

    /// Runs the text tower on every prompt: `M` normal and `M` abnormal embeddings, normalised.
    pub async fn encode<B: Backend>(&self, be: &B, text: &TextTower<B>) -> Result<TextEmbeddings, Error> {
        self.validate()?;
        let c = &self.config;
        if c.width != text.config().width {
            return Err(ModelError::Config(format!(
                "prompts are {} wide but the text tower is {} wide: they were made for another CLIP",
                c.width,
                text.config().width
            ))
            .into());
        }
        let deep: Vec<B::Tensor> = self
            .deep
            .chunks_exact(c.deep_tokens * c.width)
            .map(|d| be.upload(d, &[c.deep_tokens, c.width]))
            .collect::<Result<_, _>>()?;
        let normal = self.encode_state(be, text, &c.normal_suffix, &self.ctx_normal, &deep).await?;
        let abnormal = self.encode_state(be, text, &c.abnormal_suffix, &self.ctx_abnormal, &deep).await?;
        let dim = normal.len() / c.subspaces;
        Ok(TextEmbeddings { normal, abnormal, subspaces: c.subspaces, dim })
    }

    /// The `M` normalised embeddings of one state's prompts, `[M, D]` flattened.
    async fn encode_state<B: Backend>(
        &self,
        be: &B,
        text: &TextTower<B>,
        suffix: &str,
        ctx: &[f32],
        deep: &[B::Tensor],
    ) -> Result<Vec<f32>, Error> {
        let c = &self.config;
        let ids = prompt_tokens(c, suffix, text.config().context_length)?;
        let base = text.token_rows(&ids)?;
        let span = c.context_tokens * c.width;
        let mut rows = Vec::new();
        for m in 0..c.subspaces {
            let mut x = base.clone();
            x[c.width..c.width + span].copy_from_slice(&ctx[m * span..(m + 1) * span]);
            let t = text.encode_prompted(be, &be.upload(&x, &[ids.len(), c.width])?, deep)?;
            let mut t = be.read(&t).await?;
            normalize(&mut t);
            rows.extend(t);
        }
        Ok(rows)
    }
}

/// Token ids of `[SOT] X × n_ctx suffix [EOT]`, up to EOT; the placeholders must land at
/// positions `1 ..= n_ctx` and the whole must fit the context.
pub fn prompt_tokens(c: &PromptConfig, suffix: &str, context_length: usize) -> Result<Vec<u32>, ModelError> {
    let tokenizer = Tokenizer::shared()?;
    let placeholders = vec![PROMPT_PLACEHOLDER; c.context_tokens].join(" ");
    let text = format!("{placeholders} {suffix}");
    let ids = tokenizer.tokenize(&text, context_length);
    let len = crate::clip::tokenizer::eot_position(&ids) + 1;
    let x = tokenizer.encode(PROMPT_PLACEHOLDER);
    let fits = len == tokenizer.encode(&text).len() + 2;
    let placed = x.len() == 1 && ids.get(1..=c.context_tokens).is_some_and(|s| s.iter().all(|&t| t == x[0]));
    if !fits || !placed || len <= 1 + c.deep_tokens {
        return Err(ModelError::Config(format!(
            "prompt `{text}` does not tokenize into {} placeholders and a suffix within {context_length} tokens",
            c.context_tokens
        )));
    }
    Ok(ids[..len].to_vec())
}
