//! Getting a model file's bytes into the browser: from a URL (teed into the Cache API as it
//! downloads), from the cache, from a Blob or File, or as given.
//!
//! The whole file is held in **one JS `Uint8Array`**, outside wasm memory: downloads and Blobs
//! are streamed into it chunk by chunk, with progress. [`super::tensors::JsTensorSource`] then
//! hands the model one tensor at a time.

use std::cell::Cell;

use js_sys::{Function, Object, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Blob, File, ReadableStream, ReadableStreamDefaultReader, Response};

use super::cache;
use super::error::{js_message, ErrorKind, WebError};

#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    /// The global `fetch` (window or worker), with its options (an abort signal).
    #[wasm_bindgen(catch, js_name = fetch)]
    fn global_fetch(input: &str, init: &JsValue) -> Result<js_sys::Promise, JsValue>;
}

/// How often progress is reported while bytes arrive (and always at the end of a phase).
const PROGRESS_STEP: f64 = 1024.0 * 1024.0;

/// The `onProgress` callback of `Detector.load`, called with `{ phase, loaded, total }`, and
/// what the bytes are checked for while they arrive.
#[derive(Debug, Default)]
pub struct Progress {
    callback: Option<Function>,
    last: Cell<f64>,
    /// Refuse a model too big for the wasm CPU backend as soon as its header has arrived.
    cpu_memory_gate: Cell<bool>,
}

impl Progress {
    /// Progress reported to `callback`, if any.
    pub fn new(callback: Option<Function>) -> Self {
        Progress { callback, last: Cell::new(f64::NEG_INFINITY), cpu_memory_gate: Cell::new(false) }
    }

    /// Makes every read of model bytes check, from the header alone, that the model fits the
    /// wasm CPU backend's memory ([`super::memory::check_header`]).
    pub fn gate_cpu_memory(&self) {
        self.cpu_memory_gate.set(true);
    }

    /// Reports `loaded` of `total` bytes in `phase`; at most once per MiB unless `force`.
    pub fn report(&self, phase: &str, loaded: f64, total: Option<f64>, force: bool) {
        let Some(f) = &self.callback else { return };
        if !force && loaded - self.last.get() < PROGRESS_STEP {
            return;
        }
        self.last.set(if force { f64::NEG_INFINITY } else { loaded });
        let o = Object::new();
        let _ = Reflect::set(&o, &"phase".into(), &phase.into());
        let _ = Reflect::set(&o, &"loaded".into(), &loaded.into());
        let _ = Reflect::set(&o, &"total".into(), &total.map_or(JsValue::NULL, JsValue::from));
        // A throwing callback must not break loading.
        let _ = f.call1(&JsValue::NULL, &o);
    }
}

/// Where the model bytes came from (`detector.origin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Downloaded from a URL.
    Network,
    /// Read from the browser's model cache.
    Cache,
    /// Read from a Blob or File.
    File,
    /// Given as an ArrayBuffer or typed array.
    Bytes,
}

impl Origin {
    /// The string JS sees.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Network => "network",
            Origin::Cache => "cache",
            Origin::File => "file",
            Origin::Bytes => "bytes",
        }
    }
}

/// A model file's bytes, held in JS memory.
#[derive(Debug)]
pub struct ModelBytes {
    /// The whole file.
    pub bytes: Uint8Array,
    /// A name for messages (file name or URL).
    pub name: String,
    /// Where it came from.
    pub origin: Origin,
    /// The key it is cached under, if it is.
    pub cache_key: Option<String>,
    /// Why it could not be cached, if caching was asked and failed.
    pub cache_error: Option<String>,
}

/// What `cache` in the load options asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheChoice {
    /// Not cached.
    Off,
    /// Cached under the default key (the URL, or a File's name and size); bytes are not cached.
    Default,
    /// Cached under this key.
    Key(String),
}

/// The `total` of a download or a stored entry, if it is known and sane.
fn known_len(v: Option<String>) -> Option<f64> {
    v.and_then(|s| s.trim().parse::<f64>().ok()).filter(|n| n.is_finite() && *n >= 0.0)
}

/// Largest model file accepted: JS typed arrays are indexed with u32 here.
const MAX_MODEL_BYTES: f64 = u32::MAX as f64;

fn too_large(name: &str, bytes: f64) -> WebError {
    WebError::new(
        ErrorKind::Model,
        format!(
            "{name}: {:.0} MiB is larger than the 4 GiB a model file may have in the browser; \
             import the model with --vision-only --dtype f16",
            bytes / 1048576.0
        ),
    )
}

/// Reads `stream` to its end into one JS `Uint8Array`, reporting progress in `phase`. With a
/// known `total` the chunks are copied straight into a buffer of that size; otherwise (or if the
/// stream turns out longer, as a compressed download does) they are joined at the end.
pub async fn read_stream(
    stream: &ReadableStream,
    total: Option<f64>,
    phase: &str,
    progress: &Progress,
    name: &str,
    kind: ErrorKind,
) -> Result<Uint8Array, WebError> {
    let reader: ReadableStreamDefaultReader = stream.get_reader().unchecked_into();
    let mut buf = match total {
        Some(t) if t > MAX_MODEL_BYTES => return Err(too_large(name, t)),
        Some(t) => Some(Uint8Array::new_with_length(t as u32)),
        None => None,
    };
    let mut chunks: Vec<Uint8Array> = Vec::new();
    let mut loaded = 0f64;
    let mut gate_open = !progress.cpu_memory_gate.get();
    progress.report(phase, 0.0, total, true);
    loop {
        let step =
            JsFuture::from(reader.read()).await.map_err(|e| WebError::js(kind, &format!("reading {name}"), &e))?;
        if Reflect::get(&step, &"done".into()).ok().and_then(|d| d.as_bool()).unwrap_or(true) {
            break;
        }
        let Ok(chunk) = Reflect::get(&step, &"value".into()).and_then(|v| v.dyn_into::<Uint8Array>()) else {
            return Err(WebError::new(kind, format!("reading {name}: the stream gave something other than bytes")));
        };
        let len = f64::from(chunk.length());
        if loaded + len > MAX_MODEL_BYTES {
            let _ = reader.cancel();
            return Err(too_large(name, loaded + len));
        }
        match &buf {
            Some(b) if loaded + len <= f64::from(b.length()) => b.set(&chunk, loaded as u32),
            Some(b) => {
                // Longer than announced: keep what arrived and continue chunk by chunk.
                chunks.push(b.subarray(0, loaded as u32));
                chunks.push(chunk);
                buf = None;
            }
            None => chunks.push(chunk),
        }
        loaded += len;
        if !gate_open {
            let prefix = |n: u32| match &buf {
                Some(b) => b.subarray(0, n).to_vec(),
                None => joined_prefix(&chunks, n),
            };
            match super::memory::check_header(&prefix, loaded as u32, name) {
                Some(Err(e)) => {
                    let _ = reader.cancel();
                    return Err(e);
                }
                Some(Ok(())) => gate_open = true,
                None => {}
            }
        }
        progress.report(phase, loaded, total.filter(|t| *t >= loaded), false);
    }
    progress.report(phase, loaded, Some(loaded), true);
    if let Some(b) = buf {
        if loaded < f64::from(b.length()) {
            return Err(WebError::new(
                kind,
                format!("{name}: the data ended after {loaded} of {} bytes (interrupted download?)", b.length()),
            ));
        }
        return Ok(b);
    }
    let out = Uint8Array::new_with_length(loaded as u32);
    let mut at = 0u32;
    for c in chunks {
        out.set(&c, at);
        at += c.length();
    }
    Ok(out)
}

/// The first `n` bytes of `chunks` joined.
fn joined_prefix(chunks: &[Uint8Array], n: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(n as usize);
    for c in chunks {
        let want = n as usize - out.len();
        if want == 0 {
            break;
        }
        out.extend(c.subarray(0, c.length().min(want as u32)).to_vec());
    }
    out
}

/// Resolves `url` against the page (or worker) location.
fn absolute_url(url: &str) -> String {
    let base = Reflect::get(&js_sys::global(), &"location".into())
        .and_then(|l| Reflect::get(&l, &"href".into()))
        .ok()
        .and_then(|h| h.as_string());
    match base {
        Some(base) => web_sys::Url::new_with_base(url, &base).map(|u| u.href()).unwrap_or_else(|_| url.to_string()),
        None => url.to_string(),
    }
}

/// The last path segment of a URL, for display.
fn url_name(url: &str) -> String {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.rsplit('/').find(|s| !s.is_empty()).unwrap_or(path).to_string()
}

/// Reads a cached entry's body.
pub(super) async fn from_cache(
    response: Response,
    model: cache::CachedModel,
    progress: &Progress,
) -> Result<ModelBytes, WebError> {
    let body = response.body().ok_or_else(|| WebError::new(ErrorKind::Storage, "the cached model has no body"))?;
    let total = Some(model.bytes).filter(|b| b.is_finite());
    let bytes = read_stream(&body, total, "cache", progress, &model.name, ErrorKind::Storage).await?;
    Ok(ModelBytes { bytes, name: model.name, origin: Origin::Cache, cache_key: Some(model.key), cache_error: None })
}

/// The model stored under `key` in the browser's cache.
pub async fn cached(key: &str, progress: &Progress) -> Result<ModelBytes, WebError> {
    let no_entry = || WebError::new(ErrorKind::Storage, format!("no model is cached under {key:?}"));
    let c = cache::open().await?.ok_or_else(no_entry)?;
    let (response, model) = cache::lookup(&c, key).await?.ok_or_else(no_entry)?;
    from_cache(response, model, progress).await
}

/// Downloads `url` (or reads it from the cache if it was cached under its URL before).
pub async fn from_url(url: &str, choice: &CacheChoice, progress: &Progress) -> Result<ModelBytes, WebError> {
    let url = absolute_url(url);
    let key = match choice {
        CacheChoice::Off => None,
        CacheChoice::Default => Some(url.clone()),
        CacheChoice::Key(k) => Some(k.clone()),
    };
    let cache = if key.is_some() { cache::open().await.ok().flatten() } else { None };
    if let (Some(c), Some(k)) = (&cache, &key) {
        if let Ok(Some((response, model))) = cache::lookup(c, k).await {
            return from_cache(response, model, progress).await;
        }
    }
    let net = |e: &JsValue| {
        WebError::new(
            ErrorKind::Network,
            format!(
                "cannot download {url}: {} (is the address right, and does its server allow this page \
                 to read it (CORS)?)",
                js_message(e)
            ),
        )
    };
    // Aborting stops the download itself, the cache's branch of it too (a model refused on
    // its header is not downloaded further).
    let abort = web_sys::AbortController::new().ok();
    let init = Object::new();
    if let Some(a) = &abort {
        let _ = Reflect::set(&init, &"signal".into(), &a.signal());
    }
    let promise = global_fetch(&url, &init).map_err(|e| net(&e))?;
    let response: Response = JsFuture::from(promise).await.map_err(|e| net(&e))?.unchecked_into();
    if !response.ok() {
        return Err(WebError::new(
            ErrorKind::Network,
            format!("cannot download {url}: HTTP {} {}", response.status(), response.status_text()),
        ));
    }
    let total = known_len(response.headers().get("content-length").ok().flatten());
    let body = response.body().ok_or_else(|| WebError::new(ErrorKind::Network, format!("{url}: empty response")))?;
    let name = url_name(&url);
    let (ours, stored) = match (&cache, &key) {
        (Some(c), Some(k)) => {
            let branches = body.tee();
            let (a, b): (ReadableStream, ReadableStream) =
                (branches.get(0).unchecked_into(), branches.get(1).unchecked_into());
            (a, cache::store(c, k, &name, total.unwrap_or(f64::NAN), &b).map_err(|e| e.message))
        }
        _ => (body, Err(String::new())),
    };
    let bytes = match read_stream(&ours, total, "download", progress, &url, ErrorKind::Network).await {
        Ok(b) => b,
        Err(e) => {
            if let Some(a) = &abort {
                a.abort();
            }
            // A cache put of an aborted stream rejects and stores nothing.
            return Err(e);
        }
    };
    let (cache_key, cache_error) = finish_store(stored, key, cache.is_some()).await;
    Ok(ModelBytes { bytes, name, origin: Origin::Network, cache_key, cache_error })
}

/// Waits for a cache write; `(key, None)` if it landed, `(None, why)` if it did not.
async fn finish_store(
    stored: Result<js_sys::Promise, String>,
    key: Option<String>,
    have_cache: bool,
) -> (Option<String>, Option<String>) {
    match (stored, key) {
        (_, None) => (None, None),
        (Err(_), Some(_)) if !have_cache => {
            (None, Some("this page cannot use the browser's Cache API (it needs https:// or localhost)".into()))
        }
        (Err(e), Some(_)) => (None, Some(e)),
        (Ok(p), Some(k)) => match JsFuture::from(p).await {
            Ok(_) => (Some(k), None),
            Err(e) => (None, Some(format!("the model could not be cached: {}", js_message(&e)))),
        },
    }
}

/// Reads a Blob or File (and caches it under `choice`'s key: a File's default key is its name,
/// size and modification time; a plain Blob is cached only under an explicit key).
pub async fn from_blob(blob: &Blob, choice: &CacheChoice, progress: &Progress) -> Result<ModelBytes, WebError> {
    let file = blob.dyn_ref::<File>();
    let name = file.map_or_else(|| "model".to_string(), |f| f.name());
    let size = blob.size();
    if size > MAX_MODEL_BYTES {
        return Err(too_large(&name, size));
    }
    let key = match (choice, file) {
        (CacheChoice::Off, _) | (CacheChoice::Default, None) => None,
        (CacheChoice::Default, Some(f)) => Some(format!("file:{}:{size}:{}", f.name(), f.last_modified())),
        (CacheChoice::Key(k), _) => Some(k.clone()),
    };
    let cache = if key.is_some() { cache::open().await.ok().flatten() } else { None };
    let stored = match (&cache, &key) {
        (Some(c), Some(k)) => cache::store(c, k, &name, size, &blob.stream()).map_err(|e| e.message),
        _ => Err(String::new()),
    };
    let bytes = read_stream(&blob.stream(), Some(size), "read", progress, &name, ErrorKind::Model).await?;
    let (cache_key, cache_error) = finish_store(stored, key, cache.is_some()).await;
    Ok(ModelBytes { bytes, name, origin: Origin::File, cache_key, cache_error })
}

/// Bytes given directly (no copy: the array is used as it is). Cached only under an explicit key.
pub async fn from_bytes(bytes: Uint8Array, choice: &CacheChoice) -> Result<ModelBytes, WebError> {
    let name = "model".to_string();
    let key = match choice {
        CacheChoice::Key(k) => Some(k.clone()),
        _ => None,
    };
    let cache = if key.is_some() { cache::open().await.ok().flatten() } else { None };
    let stored = match (&cache, &key) {
        (Some(c), Some(k)) => {
            let blob = Blob::new_with_u8_array_sequence(&js_sys::Array::of1(&bytes))
                .map_err(|e| WebError::js(ErrorKind::Storage, "cannot cache the model", &e))?;
            cache::store(c, k, k, f64::from(bytes.length()), &blob.stream()).map_err(|e| e.message)
        }
        _ => Err(String::new()),
    };
    let (cache_key, cache_error) = finish_store(stored, key, cache.is_some()).await;
    Ok(ModelBytes { bytes, name, origin: Origin::Bytes, cache_key, cache_error })
}
