//! The browser API (wasm-bindgen; DESIGN.md "JS API"): load a model file into WebGPU buffers and
//! detect anomalies in images, entirely on the user's device.
//!
//! ```js
//! import init, { Detector } from "tokenclip";
//! await init();
//! const det = await Detector.load("models/det.f16.safetensors", { onProgress: p => console.log(p) });
//! const r = await det.detect(fileOrImageBitmapOrImageData);
//! r.score; r.map /* Float32Array, r.width × r.height */;
//! ```
//!
//! - Model bytes stay in JS memory and reach wasm one tensor at a time ([`source`],
//!   [`tensors`]): a 600 MB
//!   ViT-L/14 f16 file never needs 600 MB of wasm memory, let alone two copies.
//! - Model files are cached in the browser's Cache API ([`cache`]) unless `cache: false`.
//! - Images are decoded by the CLI's own decoder where possible ([`image`]), so the browser's
//!   scores and maps equal `tokenclip detect`'s on the same model up to GPU rounding.
//! - Every failure rejects the promise with a JS `Error` named `TokenclipError` whose `kind` says
//!   what kind of problem it is ([`error`]); user input never panics.

pub mod cache;
mod engine;
pub mod error;
mod gpu;
pub mod image;
pub mod memory;
pub mod named;
mod overlay;
pub mod source;
pub mod tensors;
mod types;

use std::rc::Rc;

use js_sys::{Float32Array, Function, Object, Promise, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::future_to_promise;

use crate::io::image::ImageLimits;
use crate::io::preprocess::detection_pixels;

use engine::{BackendChoice, Engine, Target};
pub use error::{ErrorKind, WebError};
pub use gpu::check_web_gpu;
pub use overlay::{decode_image, encode_png_js, render_overlay_js};
use source::{CacheChoice, ModelBytes, Origin, Progress};
use tensors::JsTensorSource;

/// Logs a panic (a bug: user input never panics) to the console before the module aborts.
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            web_sys::console::error_1(&format!("tokenclip: internal error (please report it): {info}").into());
        }));
    });
}

/// A detector loaded on the browser's WebGPU device or on the wasm CPU backend.
#[wasm_bindgen]
pub struct Detector {
    inner: Rc<Inner>,
}

struct Inner {
    engine: Engine,
    turns: Rc<gpu::Turns>,
    name: String,
    bytes: f64,
    origin: Origin,
    cache_key: Option<String>,
    cache_error: Option<String>,
}

/// What `Detector.load`'s options ask for.
struct LoadOptions {
    progress: Progress,
    cache: CacheChoice,
    named: named::NamedOptions,
    backend: BackendChoice,
}

#[wasm_bindgen]
impl Detector {
    /// Loads a model file (URL, bytes, Blob or File) onto WebGPU or the CPU (`LoadOptions.backend`,
    /// "auto" by default: WebGPU when an adapter opens, else the CPU). URLs and Files are kept
    /// in the browser's cache (see `LoadOptions.cache`), and a URL found there is not
    /// downloaded again.
    ///
    /// # Errors
    /// Rejects with a `TokenclipError`: `webgpu-unavailable` (only with `backend: "webgpu"`),
    /// `adapter-limits`, `memory` (too big for the CPU backend's wasm memory; refused from the
    /// file's header, before the rest downloads), `network`, `storage`, `model` (not a tokenclip
    /// model, damaged, another architecture than its config says, no text embeddings) or
    /// `argument`.
    pub async fn load(
        #[wasm_bindgen(unchecked_param_type = "ModelSource")] source: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "LoadOptions")] options: Option<Object>,
    ) -> Result<Detector, JsValue> {
        install_panic_hook();
        let o = load_options(options.as_ref())?;
        let target = o.backend.resolve().await?;
        if matches!(target, Target::Cpu { .. }) {
            o.progress.gate_cpu_memory();
        }
        let bytes = acquire(&source, &o.cache, &o.named, &target, &o.progress).await?;
        Ok(finish_load(bytes, o.progress, target).await?)
    }

    /// The named models `load` accepts (the CLI's registry, plus `options.registry`), for a
    /// model picker: `{ name, description, licence, light, default, downloadBytes, cacheKey }`.
    ///
    /// # Errors
    /// `argument` if `options.registry` is not a valid registry file.
    #[wasm_bindgen(unchecked_return_type = "NamedModel[]")]
    pub fn models(
        #[wasm_bindgen(unchecked_optional_param_type = "LoadOptions")] options: Option<Object>,
    ) -> Result<js_sys::Array, JsValue> {
        install_panic_hook();
        let o = load_options(options.as_ref())?;
        Ok(named::list(&named::registry(&o.named)?))
    }

    /// Loads the model cached under `key` (see `cachedModels`).
    ///
    /// # Errors
    /// As `load`; `storage` if nothing is cached under `key`.
    #[wasm_bindgen(js_name = loadCached)]
    pub async fn load_cached(
        key: String,
        #[wasm_bindgen(unchecked_optional_param_type = "LoadOptions")] options: Option<Object>,
    ) -> Result<Detector, JsValue> {
        install_panic_hook();
        let o = load_options(options.as_ref())?;
        let target = o.backend.resolve().await?;
        if matches!(target, Target::Cpu { .. }) {
            o.progress.gate_cpu_memory();
        }
        let bytes = source::cached(&key, &o.progress).await?;
        Ok(finish_load(bytes, o.progress, target).await?)
    }

    /// The models in the browser's cache (empty where the Cache API is unavailable).
    ///
    /// # Errors
    /// `storage` if the cache cannot be read.
    #[wasm_bindgen(js_name = cachedModels, unchecked_return_type = "CachedModel[]")]
    pub async fn cached_models() -> Result<js_sys::Array, JsValue> {
        install_panic_hook();
        let list = cache::list().await?;
        Ok(list.iter().map(cache::CachedModel::to_js).collect())
    }

    /// Removes the model cached under `key`; resolves to whether there was one.
    ///
    /// # Errors
    /// `storage` if the cache cannot be changed.
    #[wasm_bindgen(js_name = removeCached)]
    pub async fn remove_cached(key: String) -> Result<bool, JsValue> {
        install_panic_hook();
        Ok(cache::remove(&key).await?)
    }

    /// Detects anomalies in one image. Calls are queued: one image runs at a time.
    ///
    /// # Errors
    /// Rejects with a `TokenclipError`: `image` (cannot be decoded, empty, over 16384 px a side
    /// or 64 Mpixel), `argument`, `adapter-limits` or `gpu`. On the CPU backend the pass runs on
    /// the calling thread: call it from a worker (as the page does) to keep a page responsive.
    #[wasm_bindgen(unchecked_return_type = "Promise<Detection>")]
    pub fn detect(&self, #[wasm_bindgen(unchecked_param_type = "ImageSource")] image: JsValue) -> Promise {
        install_panic_hook();
        let inner = self.inner.clone();
        future_to_promise(async move {
            let _turn = inner.turns.take().await;
            inner.detect(&image).await.map_err(JsValue::from)
        })
    }

    /// The input size S images are squashed to (the map is S × S).
    #[wasm_bindgen(getter = inputSize)]
    pub fn input_size(&self) -> usize {
        self.inner.engine.config().input_size
    }

    /// The CLIP architecture's name ("ViT-B/16", …) or "custom CLIP ViT".
    #[wasm_bindgen(getter = modelName)]
    pub fn model_name(&self) -> String {
        let c = &self.inner.engine.config().clip;
        c.name.clone().unwrap_or_else(|| "custom CLIP ViT".into())
    }

    /// The model's configuration (the `config` metadata of the file, as an object).
    #[wasm_bindgen(getter, unchecked_return_type = "Record<string, unknown>")]
    pub fn config(&self) -> JsValue {
        serde_json::to_string(self.inner.engine.config())
            .ok()
            .and_then(|s| js_sys::JSON::parse(&s).ok())
            .unwrap_or(JsValue::NULL)
    }

    /// Where the model runs: "webgpu" or "cpu" (the wasm CPU backend).
    #[wasm_bindgen(getter, unchecked_return_type = "BackendName")]
    pub fn backend(&self) -> String {
        self.inner.engine.backend().into()
    }

    /// The device in use: the GPU adapter as the browser describes it, or the CPU backend
    /// ("the CPU (WebAssembly SIMD, 1 thread)").
    #[wasm_bindgen(getter)]
    pub fn adapter(&self) -> String {
        self.inner.engine.device()
    }

    /// Why `backend: "auto"` runs on the CPU (WebGPU unavailable, or the GPU failed while
    /// loading); `undefined` on WebGPU or when the CPU was asked for.
    #[wasm_bindgen(getter = backendReason)]
    pub fn backend_reason(&self) -> Option<String> {
        self.inner.engine.why_cpu()
    }

    /// The model file's name (file name or URL's last part).
    #[wasm_bindgen(getter = fileName)]
    pub fn file_name(&self) -> String {
        self.inner.name.clone()
    }

    /// The model file's size in bytes.
    #[wasm_bindgen(getter = fileBytes)]
    pub fn file_bytes(&self) -> f64 {
        self.inner.bytes
    }

    /// Where the model bytes came from.
    #[wasm_bindgen(getter, unchecked_return_type = "ModelOrigin")]
    pub fn origin(&self) -> String {
        self.inner.origin.as_str().into()
    }

    /// The key the model file is cached under, if it is.
    #[wasm_bindgen(getter = cacheKey)]
    pub fn cache_key(&self) -> Option<String> {
        self.inner.cache_key.clone()
    }

    /// Why the model could not be cached, when caching was asked for and failed.
    #[wasm_bindgen(getter = cacheError)]
    pub fn cache_error(&self) -> Option<String> {
        self.inner.cache_error.clone()
    }
}

impl Inner {
    async fn detect(&self, value: &JsValue) -> Result<JsValue, WebError> {
        let named = image::read(value, &ImageLimits::default()).await?;
        let size = self.engine.config().input_size;
        let pixels = detection_pixels(&named.image, size as u32, &named.name)?;
        let d = self.engine.detect(&pixels).await?;
        let o = Object::new();
        let set = |k: &str, v: JsValue| {
            let _ = Reflect::set(&o, &k.into(), &v);
        };
        set("score", d.score.into());
        set("globalScore", d.global_score.into());
        set("mapMax", d.map_max.into());
        set("map", Float32Array::from(&d.map[..]).into());
        set("width", d.size.into());
        set("height", d.size.into());
        set("imageWidth", named.image.width.into());
        set("imageHeight", named.image.height.into());
        set("layers", self.engine.config().feature_layers.len().into());
        Ok(o.into())
    }
}

fn load_options(options: Option<&Object>) -> Result<LoadOptions, WebError> {
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

async fn acquire(
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
async fn finish_load(bytes: ModelBytes, progress: Progress, target: Target) -> Result<Detector, WebError> {
    let key = bytes.cache_key.clone();
    let result = upload(bytes, progress, target).await;
    if let (Err(e), Some(key)) = (&result, key) {
        if e.kind == ErrorKind::Model {
            let _ = cache::remove(&key).await;
        }
    }
    result
}

async fn upload(bytes: ModelBytes, progress: Progress, target: Target) -> Result<Detector, WebError> {
    let file_bytes = f64::from(bytes.bytes.length());
    let src = JsTensorSource::open(bytes.bytes, bytes.name.clone(), progress)?;
    let (engine, turns) = Engine::load(&src, target).await?;
    src.finish();
    let inner = Inner {
        engine,
        turns,
        name: bytes.name,
        bytes: file_bytes,
        origin: bytes.origin,
        cache_key: bytes.cache_key,
        cache_error: bytes.cache_error,
    };
    Ok(Detector { inner: Rc::new(inner) })
}
