//! The text side of import: prompts → text embeddings (METHOD.md A3, C), computed once with the
//! checkpoint's own text tower on the CPU in f32, and the tensors they add to the model file.

use std::collections::BTreeMap;

use crate::backend::cpu::CpuBackend;
use crate::clip::config::{ModelConfig, TextEmbeddingsConfig};
use crate::clip::model_file::{PROMPT_CTX_ABNORMAL, PROMPT_CTX_NORMAL, PROMPT_DEEP, TEXT_ABNORMAL, TEXT_NORMAL};
use crate::clip::text::TextTower;
use crate::clip::weights::{TensorSource, Weights};
use crate::clip::ModelError;
use crate::tokenclip::ensemble::ensemble_embeddings;
use crate::tokenclip::prompt_files::read_prompts;

use super::PromptSource;

/// Encodes `source` with the text tower of `ckpt`; records the prompts and embeddings in
/// `config` and returns the tensors to add, by model-file name.
pub fn compute(
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
    let be = CpuBackend::new();
    let text = TextTower::load(&Weights::new(ckpt, &be), &text_cfg)?;
    let mut out = BTreeMap::new();
    let (emb, description) = match source {
        PromptSource::Ensemble { class_name } => {
            let emb = pollster::block_on(ensemble_embeddings(&be, &text, class_name))?;
            (emb, format!("ensemble: {class_name}"))
        }
        PromptSource::File(path) => {
            let prompts = read_prompts(path)?;
            let emb = pollster::block_on(prompts.encode(&be, &text))?;
            out.insert(PROMPT_CTX_NORMAL.to_string(), prompts.ctx_normal.clone());
            out.insert(PROMPT_CTX_ABNORMAL.to_string(), prompts.ctx_abnormal.clone());
            if prompts.config.deep_layers > 0 {
                out.insert(PROMPT_DEEP.to_string(), prompts.deep.clone());
            }
            config.prompts = Some(prompts.config.clone());
            (emb, format!("prompts: {}", path.display()))
        }
    };
    config.text_embeddings = Some(TextEmbeddingsConfig { subspaces: emb.subspaces, source: description });
    out.insert(TEXT_NORMAL.to_string(), emb.normal);
    out.insert(TEXT_ABNORMAL.to_string(), emb.abnormal);
    Ok(out)
}
