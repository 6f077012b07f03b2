//! Reading learned prompts from checkpoints, for `tokenclip import --prompts` and the browser:
//! - an AnomalyCLIP checkpoint (`torch.save({"prompt_learner": state_dict})`): `ctx_pos` (normal)
//!   and `ctx_neg` (abnormal), `(1, 1, n_ctx, W)`, and `compound_prompts_text.{i}`, `(n_deep, W)`,
//!   giving M = 1; its projection layers and token buffers are not needed and are ignored. Its
//!   text encoder casts the deep prompts to half precision before inserting them
//!   (`ResidualAttentionBlock_learnable_token`, `.half()`), so they are rounded to f16 here too;
//! - a safetensors file with `prompt.ctx_normal`, `prompt.ctx_abnormal` (`[M, n_ctx, W]`) and
//!   optionally `prompt.deep` (`[L, n_deep, W]`): a model file made by `train`, or prompts
//!   written by a script. A model file's own prompt configuration (its suffixes) is used.

use std::collections::BTreeMap;
#[cfg(not(target_arch = "wasm32"))]
use std::path::Path;

use crate::clip::config::PromptConfig;
use crate::clip::import::Checkpoint;
use crate::clip::model_file::{config_from_metadata, PROMPT_CTX_ABNORMAL, PROMPT_CTX_NORMAL, PROMPT_DEEP};
use crate::clip::ModelError;

use super::prompts::Prompts;

/// Reads prompts from an AnomalyCLIP checkpoint or a prompts/model safetensors file.
#[cfg(not(target_arch = "wasm32"))]
pub fn read_prompts(path: &Path) -> Result<Prompts, ModelError> {
    prompts_from(&Checkpoint::open(path)?, &path.display().to_string())
}

/// Reads prompts from an opened checkpoint (`name` labels messages), as [`read_prompts`] does.
pub fn prompts_from(ckpt: &Checkpoint, name: &str) -> Result<Prompts, ModelError> {
    let name = name.to_string();
    let shapes = ckpt.shapes();
    let prompts = if shapes.contains_key(PROMPT_CTX_NORMAL) {
        read_tokenclip(ckpt, &shapes, &name)?
    } else if let Some(prefix) = anomalyclip_prefix(&shapes) {
        read_anomalyclip(ckpt, &shapes, &prefix, &name)?
    } else {
        return Err(ModelError::Unsupported {
            path: name,
            what: format!(
                "no prompts found (expected AnomalyCLIP's `prompt_learner.ctx_pos` or tokenclip's `{PROMPT_CTX_NORMAL}`)"
            ),
        });
    };
    prompts.validate().map_err(|e| ModelError::corrupt(&name, e.to_string()))?;
    Ok(prompts)
}

fn anomalyclip_prefix(shapes: &BTreeMap<String, Vec<usize>>) -> Option<String> {
    shapes.keys().find_map(|k| k.strip_suffix("ctx_pos").filter(|p| p.is_empty() || p.ends_with('.')).map(String::from))
}

fn shape_error(path: &str, name: &str, got: &[usize], expected: &str) -> ModelError {
    ModelError::corrupt(path, format!("prompt tensor `{name}` has shape {got:?}, expected {expected}"))
}

fn read_anomalyclip(
    ckpt: &Checkpoint,
    shapes: &BTreeMap<String, Vec<usize>>,
    prefix: &str,
    path: &str,
) -> Result<Prompts, ModelError> {
    let ctx = |key: &str| -> Result<(Vec<f32>, usize, usize), ModelError> {
        let name = format!("{prefix}{key}");
        match shapes.get(&name).map(Vec::as_slice) {
            Some([1, 1, n, w]) | Some([1, n, w]) => Ok((ckpt.read_f32(&name)?, *n, *w)),
            Some(s) => Err(shape_error(path, &name, s, "(1, 1, n_ctx, width): one class and one prompt per state")),
            None => Err(ModelError::MissingTensor { path: path.into(), name }),
        }
    };
    let (ctx_normal, n_ctx, width) = ctx("ctx_pos")?;
    let (ctx_abnormal, n2, w2) = ctx("ctx_neg")?;
    if (n2, w2) != (n_ctx, width) {
        return Err(ModelError::corrupt(path, "ctx_pos and ctx_neg have different shapes"));
    }
    let mut deep = Vec::new();
    let mut deep_tokens = 0;
    let mut layers = 0;
    while let Some(s) = shapes.get(&format!("{prefix}compound_prompts_text.{layers}")) {
        let name = format!("{prefix}compound_prompts_text.{layers}");
        match s.as_slice() {
            [n, w] if *w == width && (layers == 0 || *n == deep_tokens) => deep_tokens = *n,
            _ => return Err(shape_error(path, &name, s, &format!("(n_deep, {width}), the same for every layer"))),
        }
        deep.extend(ckpt.read_f32(&name)?.into_iter().map(|v| half::f16::from_f32(v).to_f32()));
        layers += 1;
    }
    let mut config = PromptConfig::anomalyclip(1, width);
    config.context_tokens = n_ctx;
    config.deep_layers = layers;
    config.deep_tokens = if layers == 0 { 0 } else { deep_tokens };
    Ok(Prompts { config, ctx_normal, ctx_abnormal, deep })
}

fn read_tokenclip(ckpt: &Checkpoint, shapes: &BTreeMap<String, Vec<usize>>, path: &str) -> Result<Prompts, ModelError> {
    let (m, n_ctx, width) = match shapes.get(PROMPT_CTX_NORMAL).map(Vec::as_slice) {
        Some([m, n, w]) => (*m, *n, *w),
        s => return Err(shape_error(path, PROMPT_CTX_NORMAL, s.unwrap_or(&[]), "[M, n_ctx, width]")),
    };
    match shapes.get(PROMPT_CTX_ABNORMAL) {
        Some(s) if *s == [m, n_ctx, width] => {}
        s => {
            let got = s.cloned().unwrap_or_default();
            return Err(shape_error(path, PROMPT_CTX_ABNORMAL, &got, &format!("[{m}, {n_ctx}, {width}]")));
        }
    }
    let (layers, deep_tokens) = match shapes.get(PROMPT_DEEP).map(Vec::as_slice) {
        None => (0, 0),
        Some([l, n, w]) if *w == width => (*l, *n),
        Some(s) => return Err(shape_error(path, PROMPT_DEEP, s, &format!("[L, n_deep, {width}]"))),
    };
    let mut config = match ckpt {
        Checkpoint::Safetensors(f) if f.header.metadata.contains_key("config") => {
            config_from_metadata(&f.header.metadata, path)?
                .prompts
                .unwrap_or_else(|| PromptConfig::anomalyclip(m, width))
        }
        _ => PromptConfig::anomalyclip(m, width),
    };
    (config.subspaces, config.context_tokens, config.width) = (m, n_ctx, width);
    (config.deep_layers, config.deep_tokens) = (layers, deep_tokens);
    let deep = if layers == 0 { Vec::new() } else { ckpt.read_f32(PROMPT_DEEP)? };
    Ok(Prompts {
        config,
        ctx_normal: ckpt.read_f32(PROMPT_CTX_NORMAL)?,
        ctx_abnormal: ckpt.read_f32(PROMPT_CTX_ABNORMAL)?,
        deep,
    })
}
