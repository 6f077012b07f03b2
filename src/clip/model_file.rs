//! The tokenclip model file (DESIGN.md "Model file"): one safetensors file whose metadata holds
//! `format = "tokenclip"`, a format version and the JSON [`ModelConfig`], and whose tensors keep
//! the OpenAI/open_clip CLIP names. [`tensor_specs`] lists exactly what a configuration implies;
//! opening a file checks every name, shape and dtype against it before anything is used.

use std::collections::BTreeMap;

use super::config::{ClipConfig, ModelConfig, TextConfig, VisionConfig, WeightDType};
use super::safetensors::StDType;
use super::ModelError;

/// `format` metadata value of every model file.
pub const FORMAT: &str = "tokenclip";
/// The format version this program writes and reads.
pub const FORMAT_VERSION: &str = "1";

/// One tensor a configuration implies.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    /// OpenAI/open_clip name.
    pub name: String,
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Storage type.
    pub dtype: StDType,
}

fn matrix_dtype(w: WeightDType) -> StDType {
    match w {
        WeightDType::F32 => StDType::F32,
        WeightDType::F16 => StDType::F16,
    }
}

/// Every tensor of a model file, in a fixed order: vision, text, then the prompts and text
/// embeddings, then the few-shot memory, when the configuration has them. Weight matrices and
/// the memory use the configured dtype;
/// LayerNorm parameters, biases, embeddings, prompts and text embeddings are always f32.
pub fn tensor_specs(config: &ModelConfig) -> Vec<TensorSpec> {
    let mut out = clip_tensor_specs(&config.clip, config.weights);
    let f = StDType::F32;
    if let Some(p) = &config.prompts {
        let ctx = vec![p.subspaces, p.context_tokens, p.width];
        out.push(TensorSpec { name: PROMPT_CTX_NORMAL.into(), shape: ctx.clone(), dtype: f });
        out.push(TensorSpec { name: PROMPT_CTX_ABNORMAL.into(), shape: ctx, dtype: f });
        if p.deep_layers > 0 {
            let shape = vec![p.deep_layers, p.deep_tokens, p.width];
            out.push(TensorSpec { name: PROMPT_DEEP.into(), shape, dtype: f });
        }
    }
    if let Some(e) = &config.text_embeddings {
        let shape = vec![e.subspaces, config.clip.embed_dim];
        out.push(TensorSpec { name: TEXT_NORMAL.into(), shape: shape.clone(), dtype: f });
        out.push(TensorSpec { name: TEXT_ABNORMAL.into(), shape, dtype: f });
    }
    if let Some(fs) = &config.few_shot {
        let shape = vec![config.clip.embed_dim, fs.shots * super::few_shot::patches_per_image(config)];
        for &l in &fs.layers {
            let dtype = matrix_dtype(config.weights);
            out.push(TensorSpec { name: super::few_shot::memory_name(l), shape: shape.clone(), dtype });
        }
    }
    out
}

/// Learned normal contexts, `[M, n_ctx, W_text]` (METHOD.md A3, B1).
pub const PROMPT_CTX_NORMAL: &str = "prompt.ctx_normal";
/// Learned abnormal contexts, `[M, n_ctx, W_text]`.
pub const PROMPT_CTX_ABNORMAL: &str = "prompt.ctx_abnormal";
/// Deep prompts shared by every prompt, `[layers, n_deep, W_text]`.
pub const PROMPT_DEEP: &str = "prompt.deep";
/// Normal text embeddings, `[M, D]`, L2-normalised: what inference uses.
pub const TEXT_NORMAL: &str = "text_embeddings.normal";
/// Abnormal text embeddings, `[M, D]`, L2-normalised.
pub const TEXT_ABNORMAL: &str = "text_embeddings.abnormal";

/// The CLIP tensors alone, in a fixed order (vision, then text).
pub fn clip_tensor_specs(clip: &ClipConfig, weights: WeightDType) -> Vec<TensorSpec> {
    let m = matrix_dtype(weights);
    let f = StDType::F32;
    let mut out = Vec::new();
    let mut push = |name: String, shape: Vec<usize>, dtype| out.push(TensorSpec { name, shape, dtype });
    let v: &VisionConfig = &clip.vision;
    let (w, g) = (v.width, v.grid());
    push("visual.class_embedding".into(), vec![w], f);
    push("visual.positional_embedding".into(), vec![g * g + 1, w], f);
    push("visual.conv1.weight".into(), vec![w, 3, v.patch_size, v.patch_size], m);
    push("visual.ln_pre.weight".into(), vec![w], f);
    push("visual.ln_pre.bias".into(), vec![w], f);
    block_specs(&mut push, "visual.transformer", v.layers, w, v.mlp_width, m);
    push("visual.ln_post.weight".into(), vec![w], f);
    push("visual.ln_post.bias".into(), vec![w], f);
    push("visual.proj".into(), vec![w, clip.embed_dim], m);
    if let Some(t) = &clip.text {
        let t: &TextConfig = t;
        push("token_embedding.weight".into(), vec![t.vocab_size, t.width], m);
        push("positional_embedding".into(), vec![t.context_length, t.width], f);
        block_specs(&mut push, "transformer", t.layers, t.width, t.mlp_width, m);
        push("ln_final.weight".into(), vec![t.width], f);
        push("ln_final.bias".into(), vec![t.width], f);
        push("text_projection".into(), vec![t.width, clip.embed_dim], m);
    }
    out
}

fn block_specs(
    push: &mut impl FnMut(String, Vec<usize>, StDType),
    prefix: &str,
    layers: usize,
    w: usize,
    mlp: usize,
    m: StDType,
) {
    let f = StDType::F32;
    for i in 0..layers {
        let p = format!("{prefix}.resblocks.{i}");
        push(format!("{p}.ln_1.weight"), vec![w], f);
        push(format!("{p}.ln_1.bias"), vec![w], f);
        push(format!("{p}.attn.in_proj_weight"), vec![3 * w, w], m);
        push(format!("{p}.attn.in_proj_bias"), vec![3 * w], f);
        push(format!("{p}.attn.out_proj.weight"), vec![w, w], m);
        push(format!("{p}.attn.out_proj.bias"), vec![w], f);
        push(format!("{p}.ln_2.weight"), vec![w], f);
        push(format!("{p}.ln_2.bias"), vec![w], f);
        push(format!("{p}.mlp.c_fc.weight"), vec![mlp, w], m);
        push(format!("{p}.mlp.c_fc.bias"), vec![mlp], f);
        push(format!("{p}.mlp.c_proj.weight"), vec![w, mlp], m);
        push(format!("{p}.mlp.c_proj.bias"), vec![w], f);
    }
}

/// The metadata of a model file with this configuration.
pub fn metadata(config: &ModelConfig) -> Result<BTreeMap<String, String>, ModelError> {
    let json = serde_json::to_string(config).map_err(|e| ModelError::Config(e.to_string()))?;
    Ok(BTreeMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("format_version".to_string(), FORMAT_VERSION.to_string()),
        ("config".to_string(), json),
    ]))
}

/// Reads and checks the configuration in a model file's metadata.
pub fn config_from_metadata(meta: &BTreeMap<String, String>, path: &str) -> Result<ModelConfig, ModelError> {
    match meta.get("format").map(String::as_str) {
        Some(FORMAT) => {}
        _ => {
            return Err(ModelError::corrupt(
                path,
                "not a tokenclip model file (no `format: tokenclip` metadata); make one with `tokenclip import`",
            ))
        }
    }
    match meta.get("format_version").map(String::as_str) {
        Some(FORMAT_VERSION) => {}
        v => {
            return Err(ModelError::corrupt(
                path,
                format!("model format version {v:?}, this program reads {FORMAT_VERSION}; re-import the checkpoint"),
            ))
        }
    }
    let json = meta.get("config").ok_or_else(|| ModelError::corrupt(path, "no `config` metadata"))?;
    let config: ModelConfig =
        serde_json::from_str(json).map_err(|e| ModelError::corrupt(path, format!("bad `config` metadata: {e}")))?;
    config.validate()?;
    Ok(config)
}

/// Checks a file's tensor table against the specs: every spec present with its shape and dtype,
/// nothing else present.
pub fn check_tensors(
    specs: &[TensorSpec],
    found: &BTreeMap<String, (StDType, Vec<usize>)>,
    path: &str,
) -> Result<(), ModelError> {
    for s in specs {
        let Some((dtype, shape)) = found.get(&s.name) else {
            return Err(ModelError::MissingTensor { path: path.into(), name: s.name.clone() });
        };
        if *shape != s.shape {
            return Err(ModelError::ShapeMismatch {
                path: path.into(),
                name: s.name.clone(),
                expected: s.shape.clone(),
                got: shape.clone(),
            });
        }
        if *dtype != s.dtype {
            return Err(ModelError::DTypeMismatch {
                path: path.into(),
                name: s.name.clone(),
                expected: s.dtype.name().into(),
                got: dtype.name().into(),
            });
        }
    }
    let known: std::collections::HashSet<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    let extra: Vec<String> = found.keys().filter(|n| !known.contains(n.as_str())).take(8).cloned().collect();
    if !extra.is_empty() {
        return Err(ModelError::UnexpectedTensors { path: path.into(), names: extra });
    }
    Ok(())
}

/// The configuration in a parsed safetensors header, with every tensor checked against it: what
/// opening a model file checks, natively ([`ModelFile::open`]) and in the browser (`web.rs`),
/// before any tensor data is read.
///
/// # Errors
/// [`ModelError::Corrupt`] for a file that is not a tokenclip model file or has a bad config;
/// [`ModelError::MissingTensor`], [`ModelError::ShapeMismatch`], [`ModelError::DTypeMismatch`] or
/// [`ModelError::UnexpectedTensors`] for tensors that do not match the config.
pub fn validate_header(header: &super::safetensors::Header, path: &str) -> Result<ModelConfig, ModelError> {
    let config = config_from_metadata(&header.metadata, path)?;
    let found = header.tensors.iter().map(|(n, e)| (n.clone(), (e.dtype, e.shape.clone()))).collect();
    check_tensors(&tensor_specs(&config), &found, path)?;
    Ok(config)
}

/// An opened, validated model file (native: positioned reads from disk).
#[cfg(not(target_arch = "wasm32"))]
#[derive(Debug)]
pub struct ModelFile {
    file: super::safetensors::SafetensorsFile,
    /// The configuration from its metadata.
    pub config: ModelConfig,
}

#[cfg(not(target_arch = "wasm32"))]
impl ModelFile {
    /// Opens `path`, parses the config and checks every tensor against it; reads no tensor data.
    pub fn open(path: &std::path::Path) -> Result<Self, ModelError> {
        let file = super::safetensors::SafetensorsFile::open(path)?;
        let config = validate_header(&file.header, file.path())?;
        Ok(ModelFile { file, config })
    }

    /// The file's path, for messages.
    pub fn path(&self) -> &str {
        self.file.path()
    }

    /// Tensor `name` as f32.
    pub fn read_f32(&self, name: &str) -> Result<Vec<f32>, ModelError> {
        self.file.read_f32(name)
    }

    /// Writes a model file at `out` (atomically) with `config`: every tensor `config` implies is
    /// taken from `extra` (f32, rounded to f16 where the spec says f16) when given there, else copied as stored from this file. Used to
    /// add or replace prompts and text embeddings without touching CLIP's weights.
    pub fn write_with(
        &self,
        out: &std::path::Path,
        config: &ModelConfig,
        extra: &BTreeMap<String, Vec<f32>>,
    ) -> Result<(), ModelError> {
        config.validate()?;
        let specs = tensor_specs(config);
        let planned: Vec<super::safetensors::PlannedTensor> = specs
            .iter()
            .map(|s| super::safetensors::PlannedTensor { name: s.name.clone(), dtype: s.dtype, shape: s.shape.clone() })
            .collect();
        super::safetensors::write_atomic(out, &metadata(config)?, &planned, |i| {
            let s = &specs[i];
            if let Some(data) = extra.get(&s.name) {
                return Ok(match s.dtype {
                    StDType::F16 => super::safetensors::f16_bytes(data),
                    _ => super::safetensors::f32_bytes(data),
                });
            }
            let (entry, bytes) = self.file.read_raw(&s.name)?;
            if entry.dtype != s.dtype || entry.shape != s.shape {
                return Err(ModelError::ShapeMismatch {
                    path: self.path().into(),
                    name: s.name.clone(),
                    expected: s.shape.clone(),
                    got: entry.shape,
                });
            }
            Ok(bytes)
        })
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl super::weights::TensorSource for ModelFile {
    fn source_name(&self) -> &str {
        self.file.path()
    }

    fn read_raw(&self, name: &str) -> Result<super::weights::RawTensor, ModelError> {
        self.file.read_raw(name).map(|(e, bytes)| super::weights::RawTensor { dtype: e.dtype, shape: e.shape, bytes })
    }
}
