//! `detector.setReferences(images, options)` and `detector.clearReferences()`: a few-shot memory
//! of the user's good images, built on the device the detector runs on (docs/FEW_SHOT.md), as
//! `tokenclip detect --reference` does natively.

use std::rc::Rc;

use js_sys::{Array, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::clip::few_shot::{default_layers, FewShotConfig, DEFAULT_WEIGHT};
use crate::io::image::ImageLimits;
use crate::io::preprocess::detection_pixels;
use crate::tokenclip::few_shot::memory_tensors;

use super::engine::References;
use super::error::{ErrorKind, WebError};
use super::{image, install_panic_hook, Detector, Inner};

/// Which memory a detector uses.
#[derive(Default)]
pub(super) enum InUse {
    /// The model file's own (or none): what a fail-over's reload gives back by itself.
    #[default]
    AsLoaded,
    /// References set in the browser.
    Set(Rc<References>),
    /// Cleared: zero-shot, even where the file had a memory.
    Cleared,
}

#[wasm_bindgen]
impl Detector {
    /// Builds a few-shot memory from a few good images of the product (files, blobs, bitmaps or
    /// ImageData; any size, squashed like the inspected images) and uses it for every later
    /// image: maps add `weight ×` the few-shot map, and the score takes its maximum in unless
    /// `imageScore: false`. Replaces earlier references. Resolves with how many images went in
    /// and those skipped (undecodable), by index. Calls queue with `detect`.
    ///
    /// # Errors
    /// Rejects with a `TokenclipError`: `argument` (no images, bad options, a layer the model
    /// does not tap, too many images), `image` (none could be decoded), or a GPU fault as
    /// `detect` has them.
    #[wasm_bindgen(js_name = setReferences, unchecked_return_type = "Promise<ReferenceResult>")]
    pub fn set_references(
        &self,
        #[wasm_bindgen(unchecked_param_type = "ImageSource[]")] images: Array,
        #[wasm_bindgen(unchecked_optional_param_type = "ReferenceOptions")] options: Option<Object>,
    ) -> Promise {
        install_panic_hook();
        let inner = self.inner.clone();
        future_to_promise(async move {
            let turns = inner.turns.borrow().clone();
            let _turn = turns.take().await;
            inner.set_references(&images, options.as_ref()).await.map_err(JsValue::from)
        })
    }

    /// Goes back to zero-shot detection (also when the model file carried a memory).
    #[wasm_bindgen(js_name = clearReferences, unchecked_return_type = "Promise<void>")]
    pub fn clear_references(&self) -> Promise {
        install_panic_hook();
        let inner = self.inner.clone();
        future_to_promise(async move {
            let turns = inner.turns.borrow().clone();
            let _turn = turns.take().await;
            inner.use_references(None)?;
            *inner.references.borrow_mut() = InUse::Cleared;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// How many reference images the memory in use holds (0: zero-shot).
    #[wasm_bindgen(getter)]
    pub fn references(&self) -> usize {
        self.inner.engine().config().few_shot.as_ref().map_or(0, |f| f.shots)
    }
}

impl Inner {
    async fn set_references(&self, images: &Array, options: Option<&Object>) -> Result<JsValue, WebError> {
        if images.length() == 0 {
            return Err(WebError::argument("setReferences needs at least one image"));
        }
        let model = self.engine().config().clone();
        let mut fs = settings(&model, options)?;
        fs.validate(&model).map_err(|e| WebError::argument(e.to_string()))?;
        let size = model.input_size;
        let (mut patches, skipped) = (Vec::new(), Array::new());
        for (i, value) in images.iter().enumerate() {
            let pixels = match image::read(&value, &ImageLimits::default()).await {
                Ok(named) => detection_pixels(&named.image, size as u32, &named.name).map_err(WebError::from),
                Err(e) => Err(e),
            };
            match pixels {
                Ok(p) => patches.push(self.embeddings(&p, &fs.layers).await?),
                Err(e) => {
                    let o = Object::new();
                    let _ = Reflect::set(&o, &"index".into(), &(i as u32).into());
                    let _ = Reflect::set(&o, &"message".into(), &e.message.into());
                    skipped.push(&o);
                }
            }
        }
        if patches.is_empty() {
            return Err(WebError::new(
                ErrorKind::Image,
                format!("none of the {} reference images could be decoded", images.length()),
            ));
        }
        fs.shots = patches.len();
        fs.source = format!("{} images set in the browser", patches.len());
        let layers = fs.layers.clone();
        let mut config = model;
        config.few_shot = Some(fs);
        config.validate().map_err(|e| WebError::argument(e.to_string()))?;
        let tensors = memory_tensors(&config, &layers, &patches)?;
        let refs = Rc::new(References { config, tensors });
        self.use_references(Some(&refs))?;
        *self.references.borrow_mut() = InUse::Set(refs);
        let out = Object::new();
        let _ = Reflect::set(&out, &"shots".into(), &patches.len().into());
        let _ = Reflect::set(&out, &"skipped".into(), &skipped);
        Ok(out.into())
    }

    /// Puts `refs` (or none) on the engine in use; the caller holds the turn, so no pass holds it.
    pub(super) fn use_references(&self, refs: Option<&References>) -> Result<(), WebError> {
        let mut slot = self.engine.borrow_mut();
        let engine = Rc::get_mut(&mut slot)
            .ok_or_else(|| WebError::new(ErrorKind::Argument, "the detector is busy; await its passes first"))?;
        Ok(engine.set_references(refs)?)
    }

    /// A reference's patch embeddings, with `detect`'s fail-over to the CPU.
    async fn embeddings(&self, pixels: &[f32], layers: &[usize]) -> Result<Vec<Vec<f32>>, WebError> {
        let e = match self.engine().patch_embeddings(pixels, layers).await {
            Ok(p) => return Ok(p),
            Err(e) => e,
        };
        let cpu = self.recover(e).await?;
        Ok(cpu.patch_embeddings(pixels, layers).await?)
    }
}

/// The memory settings of `ReferenceOptions` (`layers`, `weight`, `imageScore`), for `model`.
fn settings(model: &crate::clip::config::ModelConfig, options: Option<&Object>) -> Result<FewShotConfig, WebError> {
    let get =
        |k: &str| options.map_or(JsValue::UNDEFINED, |o| Reflect::get(o, &k.into()).unwrap_or(JsValue::UNDEFINED));
    let layers = match get("layers") {
        v if v.is_undefined() || v.is_null() => default_layers(model),
        v => {
            let bad = || WebError::argument("layers must be an array of whole layer numbers");
            let arr = v.dyn_into::<Array>().map_err(|_| bad())?;
            arr.iter()
                .map(|l| l.as_f64().filter(|x| x.fract() == 0.0 && *x >= 1.0).map(|x| x as usize).ok_or_else(bad))
                .collect::<Result<_, _>>()?
        }
    };
    let weight = match get("weight") {
        v if v.is_undefined() => DEFAULT_WEIGHT,
        v => v.as_f64().ok_or_else(|| WebError::argument("weight must be a number"))? as f32,
    };
    let image_score = match get("imageScore") {
        v if v.is_undefined() => true,
        v => v.as_bool().ok_or_else(|| WebError::argument("imageScore must be a boolean"))?,
    };
    Ok(FewShotConfig { shots: 1, layers, weight, image_score, source: String::new(), model: String::new() })
}
