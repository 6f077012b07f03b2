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

mod backend_choice;
pub mod cache;
mod engine;
pub mod error;
mod gpu;
pub mod image;
mod load;
pub mod memory;
pub mod named;
mod overlay;
mod pass;
mod references;
pub mod source;
pub mod tensors;
mod types;

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::{Object, Promise};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use engine::{Engine, Target};
pub use error::{ErrorKind, WebError};
pub use gpu::{check_web_gpu, set_test_gpu_fault};
use load::{acquire, finish_load, load_options};
pub use overlay::{decode_image, encode_png_js, render_overlay_js};
use source::Origin;

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
    /// Replaced by the CPU engine when "auto" fails over after a GPU fault.
    engine: RefCell<Rc<Engine>>,
    /// The queue the engine's passes take turns in (replaced with it).
    turns: RefCell<Rc<gpu::Turns>>,
    name: String,
    bytes: f64,
    origin: Origin,
    cache_key: Option<String>,
    cache_error: Option<String>,
    /// Whether this detector moved to the CPU after a GPU fault (reported once, on the console).
    switched: Cell<bool>,
    /// The few-shot memory in use (`setReferences`), taken along by a fail-over.
    references: RefCell<references::InUse>,
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
        Ok(Detector { inner: Rc::new(finish_load(bytes, o.progress, target).await?) })
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
        Ok(Detector { inner: Rc::new(finish_load(bytes, o.progress, target).await?) })
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

    /// Detects anomalies in one image. Calls are queued: one image runs at a time. The result
    /// says which backend ran it (`backend`): loaded with "auto", a GPU that fails (device lost,
    /// out of memory) hands over to the CPU, the image is redone there and every later one runs
    /// there too (`detector.backend` becomes "cpu", `backendReason` says why, and the console
    /// says so once).
    ///
    /// # Errors
    /// Rejects with a `TokenclipError`: `image` (cannot be decoded, empty, over 16384 px a side
    /// or 64 Mpixel), `argument`, `adapter-limits`, `gpu` (a GPU fault under "webgpu"; load
    /// the model again for a new device), or, when the CPU cannot take over, `memory` or
    /// `storage`. On the CPU backend the pass runs on the calling thread: call it from a worker
    /// (as the page does) to keep a page responsive.
    #[wasm_bindgen(unchecked_return_type = "Promise<Detection>")]
    pub fn detect(&self, #[wasm_bindgen(unchecked_param_type = "ImageSource")] image: JsValue) -> Promise {
        install_panic_hook();
        let inner = self.inner.clone();
        future_to_promise(async move {
            let turns = inner.turns.borrow().clone();
            let _turn = turns.take().await;
            inner.detect(&image).await.map_err(JsValue::from)
        })
    }

    /// The input size S images are squashed to (the map is S × S).
    #[wasm_bindgen(getter = inputSize)]
    pub fn input_size(&self) -> usize {
        self.inner.engine().config().input_size
    }

    /// The CLIP architecture's name ("ViT-B/16", …) or "custom CLIP ViT".
    #[wasm_bindgen(getter = modelName)]
    pub fn model_name(&self) -> String {
        let engine = self.inner.engine();
        engine.config().clip.name.clone().unwrap_or_else(|| "custom CLIP ViT".into())
    }

    /// The model's configuration (the `config` metadata of the file, as an object).
    #[wasm_bindgen(getter, unchecked_return_type = "Record<string, unknown>")]
    pub fn config(&self) -> JsValue {
        serde_json::to_string(self.inner.engine().config())
            .ok()
            .and_then(|s| js_sys::JSON::parse(&s).ok())
            .unwrap_or(JsValue::NULL)
    }

    /// Where the model runs: "webgpu" or "cpu" (the wasm CPU backend).
    #[wasm_bindgen(getter, unchecked_return_type = "BackendName")]
    pub fn backend(&self) -> String {
        self.inner.engine().backend().into()
    }

    /// The device in use: the GPU adapter as the browser describes it, or the CPU backend
    /// ("the CPU (WebAssembly SIMD, 1 thread)").
    #[wasm_bindgen(getter)]
    pub fn adapter(&self) -> String {
        self.inner.engine().device()
    }

    /// Why `backend: "auto"` runs on the CPU (WebGPU unavailable, or the GPU failed while
    /// loading or during a pass); `undefined` on WebGPU or when the CPU was asked for.
    #[wasm_bindgen(getter = backendReason)]
    pub fn backend_reason(&self) -> Option<String> {
        self.inner.engine().why_cpu()
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
