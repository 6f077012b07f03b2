//! What `Detector.load` does before the detector exists: reads its options, gets the model's
//! bytes (a name, URL, Blob/File, bytes or the cache) and loads them onto the chosen backend.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Function, Object, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};

use super::engine::{BackendChoice, Engine, Target};
use super::error::{ErrorKind, WebError};
use super::source::{self, CacheChoice, ModelBytes, Progress};
use super::tensors::JsTensorSource;
use super::{cache, named, Inner};

/// What `Detector.load`'s options ask for.
pub(super) struct LoadOptions {
    pub progress: Progress,
    pub cache: CacheChoice,
    pub named: named::NamedOptions,
    pub backend: BackendChoice,
}

/// Reads `Detector.load`'s options.
pub(super) fn load_options(options: Option<&Object>) -> Result<LoadOptions, WebError> {
    let Some(o) = options else {
        return Ok(LoadOptions {
            progress: Progress::new(None),
            cache: CacheChoice::Default,
            named: Default::default(),
            backend: BackendChoice::Auto,
        });
    };
    let get = |k: &str| Reflect::get(o, &k.into()).unwrap_or(JsValue::UNDEFINED);
    let text = |k: &str| -> Result<Option<String>, WebError> {
        let v = get(k);
        if v.is_undefined() || v.is_null() {
            return Ok(None);
        }
        v.as_string().map(Some).ok_or_else(|| WebError::argument(format!("{k} must be a string")))
    };
    let mut named = named::NamedOptions::default();
    if let Some(e) = text("hubEndpoint")? {
        named.endpoints.hub = e.trim_end_matches('/').to_string();
    }
    if let Some(e) = text("githubEndpoint")? {
        named.endpoints.github = e.trim_end_matches('/').to_string();
    }
    named.registry = text("registry")?;
    let on = get("onProgress");
    let callback = if on.is_undefined() || on.is_null() {
        None
    } else {
        Some(on.dyn_into::<Function>().map_err(|_| WebError::argument("onProgress must be a function"))?)
    };
    let cache = get("cache");
    let choice = if cache.is_undefined() || cache.is_null() {
        CacheChoice::Default
    } else if let Some(b) = cache.as_bool() {
        if b {
            CacheChoice::Default
        } else {
            CacheChoice::Off
        }
    } else if let Some(k) = cache.as_string().filter(|k| !k.is_empty()) {
        CacheChoice::Key(k)
    } else {
        return Err(WebError::argument("cache must be true, false or a non-empty key string"));
    };
    let backend = BackendChoice::parse(&get("backend"))?;
    Ok(LoadOptions { progress: Progress::new(callback), cache: choice, named, backend })
}

/// The model file's bytes from a `Detector.load` source.
pub(super) async fn acquire(
    source: &JsValue,
    choice: &CacheChoice,
    named: &named::NamedOptions,
    target: &Target,
    progress: &Progress,
) -> Result<ModelBytes, WebError> {
    if let Some(url) = source.as_string() {
        let registry = named::registry(named)?;
        if let Some(entry) = registry.get(&url) {
            return named::load(entry, named, choice, target, progress).await;
        }
        return source::from_url(&url, choice, progress).await;
    }
    if let Some(url) = source.dyn_ref::<web_sys::Url>() {
        return source::from_url(&url.href(), choice, progress).await;
    }
    if let Some(blob) = source.dyn_ref::<web_sys::Blob>() {
        return source::from_blob(blob, choice, progress).await;
    }
    if let Some(buffer) = source.dyn_ref::<js_sys::ArrayBuffer>() {
        return source::from_bytes(Uint8Array::new(buffer), choice).await;
    }
    if js_sys::ArrayBuffer::is_view(source) {
        let get = |k: &str| Reflect::get(source, &k.into()).ok();
        let buffer = get("buffer").and_then(|b| b.dyn_into::<js_sys::ArrayBuffer>().ok());
        let offset = get("byteOffset").and_then(|v| v.as_f64());
        let len = get("byteLength").and_then(|v| v.as_f64());
        if let (Some(buffer), Some(offset), Some(len)) = (buffer, offset, len) {
            let bytes = Uint8Array::new_with_byte_offset_and_length(&buffer, offset as u32, len as u32);
            return source::from_bytes(bytes, choice).await;
        }
    }
    Err(WebError::argument("Detector.load takes a URL (string or URL), an ArrayBuffer or typed array, or a Blob/File"))
}

/// Checks the file (before touching the GPU, so a wrong file fails at once), loads the model on
/// its backend. A file that turns out not to be a usable model is removed from the cache again,
/// so it is not offered (or auto-loaded by a page) next time.
pub(super) async fn finish_load(bytes: ModelBytes, progress: Progress, target: Target) -> Result<Inner, WebError> {
    let key = bytes.cache_key.clone();
    let result = upload(bytes, progress, target).await;
    if let (Err(e), Some(key)) = (&result, key) {
        if e.kind == ErrorKind::Model {
            let _ = cache::remove(&key).await;
        }
    }
    result
}

async fn upload(bytes: ModelBytes, progress: Progress, target: Target) -> Result<Inner, WebError> {
    let file_bytes = f64::from(bytes.bytes.length());
    let src = JsTensorSource::open(bytes.bytes, bytes.name.clone(), progress)?;
    let (engine, turns) = Engine::load(src, target, bytes.cache_key.clone()).await?;
    Ok(Inner {
        engine: RefCell::new(Rc::new(engine)),
        turns: RefCell::new(turns),
        name: bytes.name,
        bytes: file_bytes,
        origin: bytes.origin,
        cache_key: bytes.cache_key,
        cache_error: bytes.cache_error,
        switched: Default::default(),
        references: Default::default(),
    })
}
