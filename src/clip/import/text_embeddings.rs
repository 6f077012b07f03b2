//! The text side of import: prompts → text embeddings (METHOD.md A3, C), computed once with the
//! checkpoint's own text tower in f32 (on the CPU natively, on the page's backend in the
//! browser), and the tensors they add to the model file.

use std::collections::BTreeMap;

use crate::backend::Backend;
use crate::clip::config::{ModelConfig, TextEmbeddingsConfig};
use crate::clip::model_file::{PROMPT_CTX_ABNORMAL, PROMPT_CTX_NORMAL, PROMPT_DEEP, TEXT_ABNORMAL, TEXT_NORMAL};
use crate::clip::text::TextTower;
use crate::clip::weights::{TensorSource, Weights};
use crate::clip::ModelError;
use crate::tokenclip::ensemble::ensemble_embeddings;
use crate::tokenclip::prompts::Prompts;

use super::PromptSource;

/// Encodes `source` with the text tower of `ckpt` on `be`; records the prompts and embeddings in
/// `config` and returns the tensors to add, by model-file name.
pub async fn compute<B: Backend>(
    be: &B,
    ckpt: &dyn TensorSource,
    source: &PromptSource,
    config: &mut ModelConfig,
) -> Result<BTreeMap<String, Vec<f32>>, crate::Error> {
    let Some(text_cfg) = config.clip.text.clone() else {
        return Err(ModelError::Unsupported {
            path: ckpt.source_name().into(),
            what: "the checkpoint has no text tower, so prompts cannot be encoded".into(),
        }
        .into());
    };
    let text = TextTower::load(&Weights::new(ckpt, be), &text_cfg)?;
    let mut out = BTreeMap::new();
    let (prompts, description) = match source {
        PromptSource::Ensemble { class_name } => {
            let emb = ensemble_embeddings(be, &text, class_name).await?;
            config.text_embeddings =
                Some(TextEmbeddingsConfig { subspaces: emb.subspaces, source: format!("ensemble: {class_name}") });
            out.insert(TEXT_NORMAL.to_string(), emb.normal);
            out.insert(TEXT_ABNORMAL.to_string(), emb.abnormal);
            return Ok(out);
        }
        PromptSource::File(path) => (std::borrow::Cow::Owned(read_file(path)?), format!("prompts: {}", path.display())),
        PromptSource::Loaded { prompts, source } => {
            (std::borrow::Cow::Borrowed(&**prompts), format!("prompts: {source}"))
        }
    };
    let emb = prompts.encode(be, &text).await?;
    out.insert(PROMPT_CTX_NORMAL.to_string(), prompts.ctx_normal.clone());
    out.insert(PROMPT_CTX_ABNORMAL.to_string(), prompts.ctx_abnormal.clone());
    if prompts.config.deep_layers > 0 {
        out.insert(PROMPT_DEEP.to_string(), prompts.deep.clone());
    }
    config.prompts = Some(prompts.config.clone());
    config.text_embeddings = Some(TextEmbeddingsConfig { subspaces: emb.subspaces, source: description });
    out.insert(TEXT_NORMAL.to_string(), emb.normal);
    out.insert(TEXT_ABNORMAL.to_string(), emb.abnormal);
    Ok(out)
}

#[cfg(not(target_arch = "wasm32"))]
fn read_file(path: &std::path::Path) -> Result<Prompts, ModelError> {
    crate::tokenclip::prompt_files::read_prompts(path)
}

#[cfg(target_arch = "wasm32")]
fn read_file(path: &std::path::Path) -> Result<Prompts, ModelError> {
    Err(ModelError::Unsupported {
        path: path.display().to_string(),
        what: "prompt files cannot be read from disk in the browser".into(),
    })
}
