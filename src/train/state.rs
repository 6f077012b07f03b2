//! The resumable training state (`OUT.state.safetensors`): the prompts, Adam's moments, and in
//! the metadata the run's configuration, prompt shapes, progress and Adam's step count. Written
//! atomically, so an interrupted write never replaces the last good state.

use std::collections::BTreeMap;
use std::path::Path;

use crate::clip::config::PromptConfig;
use crate::clip::safetensors::{f32_bytes, write_atomic, PlannedTensor, SafetensorsFile, StDType};
use crate::clip::ModelError;
use crate::tokenclip::prompts::Prompts;
use crate::Error;

use super::adam::Adam;
use super::config::TrainConfig;
use super::trainer::{Progress, Trainer};

/// `format` metadata of a state file.
pub const STATE_FORMAT: &str = "tokenclip-train-state";

const TENSORS: [&str; 5] = ["ctx_normal", "ctx_abnormal", "deep", "adam.m", "adam.v"];

/// Writes `t`'s state to `path`.
pub fn save(path: &Path, t: &Trainer) -> Result<(), Error> {
    let (prompts, adam) = t.parts();
    let json = |v: &dyn erased::Json| v.json().map_err(|e| ModelError::Config(e.to_string()));
    let meta = BTreeMap::from([
        ("format".to_string(), STATE_FORMAT.to_string()),
        ("config".to_string(), json(&t.config)?),
        ("prompts".to_string(), json(&prompts.config)?),
        ("progress".to_string(), json(&t.progress)?),
        ("adam_step".to_string(), adam.step.to_string()),
    ]);
    let data: [&[f32]; 5] = [&prompts.ctx_normal, &prompts.ctx_abnormal, &prompts.deep, &adam.m, &adam.v];
    let planned: Vec<PlannedTensor> = TENSORS
        .iter()
        .zip(&data)
        .map(|(n, d)| PlannedTensor { name: n.to_string(), dtype: StDType::F32, shape: vec![d.len()] })
        .collect();
    write_atomic(path, &meta, &planned, |i| Ok(f32_bytes(data[i])))?;
    Ok(())
}

/// Reads a state file written by [`save`].
pub fn load(path: &Path) -> Result<(TrainConfig, Prompts, Progress, Adam), Error> {
    let f = SafetensorsFile::open(path)?;
    let name = path.display().to_string();
    let meta = &f.header.metadata;
    if meta.get("format").map(String::as_str) != Some(STATE_FORMAT) {
        return Err(ModelError::corrupt(&name, "not a tokenclip training state (written by `tokenclip train`)").into());
    }
    let get = |k: &str| meta.get(k).ok_or_else(|| ModelError::corrupt(&name, format!("no `{k}` metadata")));
    let parse = |k: &str| -> Result<serde_json::Value, ModelError> {
        serde_json::from_str(get(k)?).map_err(|e| ModelError::corrupt(&name, format!("bad `{k}`: {e}")))
    };
    let bad = |k: &str, e: serde_json::Error| ModelError::corrupt(&name, format!("bad `{k}`: {e}"));
    let config: TrainConfig = serde_json::from_value(parse("config")?).map_err(|e| bad("config", e))?;
    let pc: PromptConfig = serde_json::from_value(parse("prompts")?).map_err(|e| bad("prompts", e))?;
    let progress: Progress = serde_json::from_value(parse("progress")?).map_err(|e| bad("progress", e))?;
    let step: u64 = get("adam_step")?.parse().map_err(|_| ModelError::corrupt(&name, "bad `adam_step`"))?;
    let mut t = Vec::with_capacity(TENSORS.len());
    for n in TENSORS {
        t.push(f.read_f32(n)?);
    }
    let (v, m) = (t.pop().unwrap_or_default(), t.pop().unwrap_or_default());
    let deep = t.pop().unwrap_or_default();
    let (ctx_abnormal, ctx_normal) = (t.pop().unwrap_or_default(), t.pop().unwrap_or_default());
    let prompts = Prompts { config: pc, ctx_normal, ctx_abnormal, deep };
    prompts.validate().map_err(|e| ModelError::corrupt(&name, e.to_string()))?;
    if m.len() != v.len() || progress.order.iter().any(|&i| i >= progress.order.len()) {
        return Err(ModelError::corrupt(&name, "inconsistent optimiser state or image order").into());
    }
    let adam = Adam { config: config.adam, step, m, v };
    Ok((config, prompts, progress, adam))
}

/// JSON for the few serialisable parts (keeps `save` free of generic noise).
mod erased {
    /// Something serialisable to a JSON string.
    pub trait Json {
        /// Its JSON.
        fn json(&self) -> Result<String, serde_json::Error>;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> Result<String, serde_json::Error> {
            serde_json::to_string(self)
        }
    }
}
