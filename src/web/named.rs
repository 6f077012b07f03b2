//! Named models in the browser (`Detector.load("anomalyclip")`): the same registry as the CLI,
//! its original files fetched (plain GETs: no `Range` or auth headers, which fail the CORS
//! preflight of the hub's storage), checked for size and hash in wasm, converted with the
//! importer the CLI uses (the text tower runs once on the page's GPU backend), the vision tower
//! kept in f16, and the converted file cached in the Cache API so a reload is offline.
//!
//! Memory: each original file is held once, in one JS `Uint8Array`; conversion reads it tensor
//! by tensor into wasm and writes the converted file straight into another JS array of exactly
//! its size, so the 1.7 GB f32 checkpoint is never held twice.

use js_sys::{Object, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::Response;

use crate::backend::cpu::CpuBackend;
use crate::clip::config::WeightDType;
use crate::clip::import::{plan_import, Checkpoint, PromptSource};
use crate::hub::source::Endpoints;
use crate::hub::verify::{check, Hasher};
use crate::hub::{Digest, FileSource, ModelEntry, PromptsSpec, Registry};
use crate::io::bytes::RandomAccess;
use crate::tokenclip::prompt_files::prompts_from;

use super::cache;
use super::engine::Target;
use super::error::{js_message, ErrorKind, WebError};
use super::gpu;
use super::source::{read_stream, CacheChoice, ModelBytes, Origin, Progress};

#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    #[wasm_bindgen(catch, js_name = fetch)]
    fn fetch_with(input: &str, init: &JsValue) -> Result<js_sys::Promise, JsValue>;
}

/// Bytes hashed per step (copied from JS into wasm 4 MiB at a time).
const HASH_CHUNK: u32 = 4 << 20;

/// A JS array as a [`RandomAccess`] source: reads copy just the bytes asked for into wasm.
pub struct JsBytes(pub Uint8Array);

impl RandomAccess for JsBytes {
    fn len(&self) -> u64 {
        u64::from(self.0.length())
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let end = offset.checked_add(buf.len() as u64).filter(|e| *e <= self.len());
        let (Ok(start), Some(Ok(end))) = (u32::try_from(offset), end.map(u32::try_from)) else {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "read past the end of the download"));
        };
        self.0.subarray(start, end).copy_to(buf);
        Ok(())
    }
}

/// Writes into a JS array allocated at the final size.
struct JsWriter {
    out: Uint8Array,
    at: u32,
}

impl std::io::Write for JsWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let end =
            u32::try_from(buf.len()).ok().and_then(|n| self.at.checked_add(n)).filter(|e| *e <= self.out.length());
        let Some(end) = end else {
            return Err(std::io::Error::new(std::io::ErrorKind::WriteZero, "converted file larger than planned"));
        };
        self.out.subarray(self.at, end).copy_from(buf);
        self.at = end;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What `Detector.load(NAME, options)` may say about names.
#[derive(Debug, Clone, Default)]
pub struct NamedOptions {
    /// Hub and GitHub base addresses (`hubEndpoint`, `githubEndpoint`).
    pub endpoints: Endpoints,
    /// Extra registry entries (`registry`: the text of a registry file).
    pub registry: Option<String>,
}

/// The registry the browser sees: the built-in names plus `options.registry`.
pub fn registry(opts: &NamedOptions) -> Result<Registry, WebError> {
    let mut r = Registry::builtin()?;
    if let Some(text) = &opts.registry {
        r.merge(Registry::parse(text, "the registry option")?);
    }
    Ok(r)
}

/// The key a named model's converted file is cached under.
pub fn cache_key(entry: &ModelEntry) -> String {
    format!("tokenclip:named:{}:{}", entry.name, entry.conversion_id("web"))
}

/// The converted model file of `entry`: from the cache, or fetched, checked and converted now.
pub async fn load(
    entry: &ModelEntry,
    opts: &NamedOptions,
    choice: &CacheChoice,
    target: &Target,
    progress: &Progress,
) -> Result<ModelBytes, WebError> {
    let key = match choice {
        CacheChoice::Off => None,
        CacheChoice::Default => Some(cache_key(entry)),
        CacheChoice::Key(k) => Some(k.clone()),
    };
    let store = if key.is_some() { cache::open().await.ok().flatten() } else { None };
    if let (Some(c), Some(k)) = (&store, &key) {
        if let Ok(Some(found)) = cache::lookup(c, k).await {
            return super::source::from_cache(found.0, found.1, progress).await;
        }
    }
    let clip = fetch_verified(&entry.clip, &opts.endpoints, progress).await?;
    let prompts = match &entry.prompts {
        PromptsSpec::Ensemble(class_name) => PromptSource::Ensemble { class_name: class_name.clone() },
        PromptsSpec::File(src) => {
            let bytes = fetch_verified(src, &opts.endpoints, progress).await?;
            let name = src.file_name().to_string();
            let ckpt = Checkpoint::from_source(Box::new(JsBytes(bytes)), name.clone())?;
            PromptSource::Loaded { prompts: Box::new(prompts_from(&ckpt, &name)?), source: src.describe() }
        }
    };
    let out = convert(entry, clip, prompts, target, progress).await?;
    let (cache_key, cache_error) = match (&store, &key) {
        (Some(c), Some(k)) => {
            let blob = web_sys::Blob::new_with_u8_array_sequence(&js_sys::Array::of1(&out))
                .map_err(|e| WebError::js(ErrorKind::Storage, "cannot cache the model", &e))?;
            let stored = cache::store(c, k, &entry.name, f64::from(out.length()), &blob.stream());
            match stored {
                Ok(p) => match JsFuture::from(p).await {
                    Ok(_) => (Some(k.clone()), None),
                    Err(e) => (None, Some(format!("the model could not be cached: {}", js_message(&e)))),
                },
                Err(e) => (None, Some(e.message)),
            }
        }
        (None, Some(_)) => {
            (None, Some("this page cannot use the browser's Cache API (it needs https:// or localhost)".into()))
        }
        _ => (None, None),
    };
    Ok(ModelBytes { bytes: out, name: entry.name.clone(), origin: Origin::Network, cache_key, cache_error })
}

/// Imports the downloaded checkpoint into a vision-only f16 model file in a new JS array.
async fn convert(
    entry: &ModelEntry,
    clip: Uint8Array,
    prompts: PromptSource,
    target: &Target,
    progress: &Progress,
) -> Result<Uint8Array, WebError> {
    let ckpt = Checkpoint::from_source(Box::new(JsBytes(clip)), entry.clip.file_name().to_string())?;
    let mut opts = entry.import.options(prompts);
    opts.dtype = WeightDType::F16;
    opts.vision_only = true;
    // The text tower runs once, on the backend the detector will use.
    let plan = if matches!(target, Target::Cpu { .. }) {
        progress.report("convert", 0.0, None, true);
        plan_import(&CpuBackend::new(), &ckpt, &Default::default(), &opts).await?
    } else {
        progress.report("gpu", 0.0, None, true);
        let shared = gpu::shared_gpu().await?;
        progress.report("gpu", 1.0, Some(1.0), true);
        progress.report("convert", 0.0, None, true);
        let plan = plan_import(shared.be.as_ref(), &ckpt, &Default::default(), &opts).await;
        // The text tower's weights went back to the pool when it was dropped: free them.
        shared.be.release_free_buffers();
        plan?
    };
    let total = plan.total_bytes();
    let len = u32::try_from(total).map_err(|_| {
        WebError::new(
            ErrorKind::Model,
            format!("{}: the converted file would be {total} bytes, over 4 GiB", entry.name),
        )
    })?;
    let mut w = JsWriter { out: Uint8Array::new_with_length(len), at: 0 };
    plan.write(&mut w, &mut |done, total| progress.report("convert", done as f64, Some(total as f64), false))?;
    progress.report("convert", total as f64, Some(total as f64), true);
    Ok(w.out)
}

/// GETs `src`, then checks its size and hash (the pinned one, or for a hub file without one,
/// the sha256 the hub publishes for it).
async fn fetch_verified(src: &FileSource, ep: &Endpoints, progress: &Progress) -> Result<Uint8Array, WebError> {
    let url = src.url(ep);
    let net = |what: String| WebError::new(ErrorKind::Network, format!("cannot download {url}: {what}"));
    let promise = fetch_with(&url, &Object::new().into()).map_err(|e| net(js_message(&e)))?;
    let response: Response = JsFuture::from(promise)
        .await
        .map_err(|e| {
            net(format!(
                "{} (is the network up, and does the server allow this page to read it (CORS)?)",
                js_message(&e)
            ))
        })?
        .unchecked_into();
    if !response.ok() {
        return Err(net(format!("HTTP {} {}", response.status(), response.status_text())));
    }
    let ctype = response.headers().get("content-type").ok().flatten().unwrap_or_default();
    if ctype.to_ascii_lowercase().starts_with("text/html") {
        return Err(WebError::new(ErrorKind::Model, format!("{url} does not serve a model file: it is an HTML page")));
    }
    let total = response.headers().get("content-length").ok().flatten().and_then(|v| v.trim().parse::<f64>().ok());
    let body = response.body().ok_or_else(|| net("empty response".into()))?;
    let bytes =
        read_stream(&body, total.or(src.size().map(|s| s as f64)), "download", progress, &url, ErrorKind::Network)
            .await?;
    let len = u64::from(bytes.length());
    let bad = |problem: String| {
        WebError::new(
            ErrorKind::Network,
            format!("{} from {}: {problem}; nothing was kept", src.file_name(), src.describe()),
        )
    };
    if let Some(size) = src.size().filter(|s| *s != len) {
        return Err(bad(format!("it has {len} bytes, expected {size}")));
    }
    let digest = match src.digest() {
        Some(d) => d,
        None => hub_digest(src, ep).await?,
    };
    progress.report("verify", 0.0, Some(len as f64), true);
    let mut h = Hasher::for_digest(&digest, len);
    let mut at = 0u32;
    while at < bytes.length() {
        let end = bytes.length().min(at.saturating_add(HASH_CHUNK));
        h.update(&bytes.subarray(at, end).to_vec());
        at = end;
        progress.report("verify", f64::from(at), Some(len as f64), false);
    }
    check(&digest, &h.finish()).map_err(bad)?;
    progress.report("verify", len as f64, Some(len as f64), true);
    Ok(bytes)
}

/// The hub's own hash of a file at a revision (`POST /api/models/REPO/paths-info/REV`): the LFS
/// sha256, or the git blob id of a small file.
async fn hub_digest(src: &FileSource, ep: &Endpoints) -> Result<Digest, WebError> {
    let FileSource::Hub { repo, revision, file, .. } = src else {
        return Err(WebError::argument(format!("{} has no hash to check it against", src.describe())));
    };
    let url = format!("{}/api/models/{repo}/paths-info/{revision}", ep.hub.trim_end_matches('/'));
    let net = |what: String| {
        WebError::new(ErrorKind::Network, format!("cannot ask the hub for the hash of {file} ({url}): {what}"))
    };
    let init = Object::new();
    let headers = Object::new();
    let set = |o: &Object, k: &str, v: &JsValue| {
        let _ = Reflect::set(o, &k.into(), v);
    };
    set(&headers, "content-type", &"application/json".into());
    set(&init, "method", &"POST".into());
    set(&init, "headers", &headers);
    set(&init, "body", &serde_json::json!({ "paths": [file], "expand": false }).to_string().into());
    let promise = fetch_with(&url, &init.into()).map_err(|e| net(js_message(&e)))?;
    let response: Response = JsFuture::from(promise).await.map_err(|e| net(js_message(&e)))?.unchecked_into();
    if !response.ok() {
        return Err(net(format!("HTTP {}", response.status())));
    }
    let text =
        JsFuture::from(response.text().map_err(|e| net(js_message(&e)))?).await.map_err(|e| net(js_message(&e)))?;
    let json: serde_json::Value =
        serde_json::from_str(&text.as_string().unwrap_or_default()).map_err(|e| net(e.to_string()))?;
    let entry = json
        .as_array()
        .and_then(|a| a.iter().find(|e| e["path"] == file.as_str()))
        .ok_or_else(|| net("the file is not listed".into()))?;
    let hex = |v: &serde_json::Value| v.as_str().map(|s| s.trim_start_matches("sha256:").to_ascii_lowercase());
    if let Some(sha) = hex(&entry["lfs"]["oid"]).or_else(|| hex(&entry["lfs"]["sha256"])) {
        return Ok(Digest::Sha256(sha));
    }
    hex(&entry["oid"]).map(Digest::GitBlob).ok_or_else(|| net("no oid in the answer".into()))
}

/// `{ name, description, licence, light, downloadBytes, default, cacheKey }` for every name.
pub fn list(reg: &Registry) -> js_sys::Array {
    reg.entries()
        .map(|e| {
            let o = Object::new();
            let set = |k: &str, v: JsValue| {
                let _ = Reflect::set(&o, &k.into(), &v);
            };
            set("name", e.name.as_str().into());
            set("description", e.description.as_str().into());
            set("licence", e.licence.as_deref().map_or(JsValue::NULL, JsValue::from));
            set("light", e.light.into());
            set("default", (e.name == crate::hub::DEFAULT_MODEL).into());
            set("downloadBytes", e.download_size().map_or(JsValue::NULL, |b| JsValue::from(b as f64)));
            set("cacheKey", cache_key(e).into());
            JsValue::from(o)
        })
        .collect()
}
