//! The model cache: model files kept in the browser's Cache API (cache `tokenclip-models-v1`), so
//! a page reload does not ask for the model again. Each entry is one model file under a key (the
//! model's absolute URL, or a name the caller chose); its headers record the key, a display name,
//! the size and when it was stored. Entries live on disk, not in memory.
//!
//! The Cache API exists only in secure contexts (https, localhost); elsewhere [`open`] returns
//! `None` and models are simply not cached.

use js_sys::{Object, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{Cache, CacheStorage, Headers, ReadableStream, Request, Response, ResponseInit};

use super::error::{ErrorKind, WebError};

/// The Cache API cache holding model files.
pub const CACHE_NAME: &str = "tokenclip-models-v1";
/// Where keys that are not http(s) URLs are filed (the Cache API only takes http(s) requests).
const KEY_BASE: &str = "https://tokenclip.invalid/models/";
const H_KEY: &str = "x-tokenclip-key";
const H_NAME: &str = "x-tokenclip-name";
const H_BYTES: &str = "x-tokenclip-bytes";
const H_STORED: &str = "x-tokenclip-stored";

/// One cached model, as `Detector.cachedModels()` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedModel {
    /// The key it is stored under.
    pub key: String,
    /// A name to show (the file name or the URL's last part).
    pub name: String,
    /// Size in bytes.
    pub bytes: f64,
    /// When it was stored (ISO 8601).
    pub stored_at: String,
}

impl CachedModel {
    /// The JS object `{ key, name, bytes, storedAt }`.
    pub fn to_js(&self) -> JsValue {
        let o = Object::new();
        let set = |k: &str, v: JsValue| {
            let _ = Reflect::set(&o, &k.into(), &v);
        };
        set("key", self.key.as_str().into());
        set("name", self.name.as_str().into());
        set("bytes", self.bytes.into());
        set("storedAt", self.stored_at.as_str().into());
        o.into()
    }
}

fn storage_err(what: &str, e: &JsValue) -> WebError {
    WebError::js(ErrorKind::Storage, what, e)
}

/// The model cache, or `None` where the Cache API does not exist (insecure contexts).
pub async fn open() -> Result<Option<Cache>, WebError> {
    let caches = Reflect::get(&js_sys::global(), &"caches".into()).unwrap_or(JsValue::UNDEFINED);
    let Some(caches) = caches.dyn_ref::<CacheStorage>() else { return Ok(None) };
    let cache =
        JsFuture::from(caches.open(CACHE_NAME)).await.map_err(|e| storage_err("cannot open the model cache", &e))?;
    Ok(cache.dyn_into::<Cache>().ok())
}

/// The request URL a key is filed under.
fn request_url(key: &str) -> String {
    if key.starts_with("https://") || key.starts_with("http://") {
        key.to_string()
    } else {
        format!("{KEY_BASE}{}", String::from(js_sys::encode_uri_component(key)))
    }
}

/// Header values must be Latin-1; names and keys are stored percent-encoded.
fn encode(s: &str) -> String {
    js_sys::encode_uri_component(s).into()
}

fn decode(s: &str) -> String {
    js_sys::decode_uri_component(s).map(String::from).unwrap_or_else(|_| s.to_string())
}

/// The cached entry for `key`, if any: its response (body unread) and description.
pub async fn lookup(cache: &Cache, key: &str) -> Result<Option<(Response, CachedModel)>, WebError> {
    let found = JsFuture::from(cache.match_with_str(&request_url(key)))
        .await
        .map_err(|e| storage_err("cannot read the model cache", &e))?;
    let Ok(response) = found.dyn_into::<Response>() else { return Ok(None) };
    let Some(model) = describe(&response) else { return Ok(None) };
    Ok(Some((response, model)))
}

fn describe(response: &Response) -> Option<CachedModel> {
    let h = response.headers();
    let get = |k: &str| h.get(k).ok().flatten();
    Some(CachedModel {
        key: decode(&get(H_KEY)?),
        name: decode(&get(H_NAME).unwrap_or_default()),
        bytes: get(H_BYTES).and_then(|b| b.parse().ok()).unwrap_or(f64::NAN),
        stored_at: get(H_STORED).unwrap_or_default(),
    })
}

/// Starts storing `body` (a stream that the caller's other branch also reads) under `key`;
/// the returned promise settles once the whole body is on disk.
pub fn store(cache: &Cache, key: &str, name: &str, bytes: f64, body: &ReadableStream) -> Result<Promise, WebError> {
    let headers = Headers::new().map_err(|e| storage_err("cannot build cache headers", &e))?;
    let stored = String::from(js_sys::Date::new_0().to_iso_string());
    for (k, v) in [
        ("content-type", "application/octet-stream".to_string()),
        (H_KEY, encode(key)),
        (H_NAME, encode(name)),
        (H_BYTES, format!("{bytes}")),
        (H_STORED, stored),
    ] {
        headers.set(k, &v).map_err(|e| storage_err("cannot build cache headers", &e))?;
    }
    let init = ResponseInit::new();
    init.set_headers(&headers);
    let response = Response::new_with_opt_readable_stream_and_init(Some(body), &init)
        .map_err(|e| storage_err("cannot build the cache entry", &e))?;
    Ok(cache.put_with_str(&request_url(key), &response))
}

/// Every cached model.
pub async fn list() -> Result<Vec<CachedModel>, WebError> {
    let Some(cache) = open().await? else { return Ok(Vec::new()) };
    let keys = JsFuture::from(cache.keys()).await.map_err(|e| storage_err("cannot list the model cache", &e))?;
    let mut out = Vec::new();
    for request in js_sys::Array::from(&keys).iter() {
        let Ok(request) = request.dyn_into::<Request>() else { continue };
        let found = JsFuture::from(cache.match_with_request(&request))
            .await
            .map_err(|e| storage_err("cannot read the model cache", &e))?;
        if let Some(model) = found.dyn_ref::<Response>().and_then(describe) {
            out.push(model);
        }
    }
    Ok(out)
}

/// Removes the model stored under `key`; `true` if there was one.
pub async fn remove(key: &str) -> Result<bool, WebError> {
    let Some(cache) = open().await? else { return Ok(false) };
    let removed = JsFuture::from(cache.delete_with_str(&request_url(key)))
        .await
        .map_err(|e| storage_err("cannot remove the model from the cache", &e))?;
    Ok(removed.as_bool().unwrap_or(false))
}
