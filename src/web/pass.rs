//! One image through a browser detector: decode, preprocess, the pass with the fail-over to
//! the CPU under "auto" (taking the references along), and the `Detection` object JS receives.

use std::rc::Rc;

use js_sys::{Float32Array, Object, Reflect};
use wasm_bindgen::JsValue;

use crate::io::image::ImageLimits;
use crate::io::preprocess::detection_pixels;

use super::engine::Engine;
use super::error::WebError;
use super::{image, references, Inner};

impl Inner {
    /// The engine now in use.
    pub(super) fn engine(&self) -> Rc<Engine> {
        self.engine.borrow().clone()
    }

    /// One pass, with the fail-over to the CPU (see `Detector::detect`).
    async fn run(&self, pixels: &[f32]) -> Result<crate::Detection, WebError> {
        let e = match self.engine().detect(pixels).await {
            Ok(d) => return Ok(d),
            Err(e) => e,
        };
        let cpu = self.recover(e).await?;
        Ok(cpu.detect(pixels).await?)
    }

    /// After `e` from a pass: under "auto", when it is a GPU fault, the model reloaded on the CPU
    /// (with the references in use) and put in place, for the caller to redo the pass there.
    pub(super) async fn recover(&self, e: crate::Error) -> Result<Rc<Engine>, WebError> {
        let Some((mut cpu, turns, why)) = self.engine().fail_over(&e).await? else { return Err(e.into()) };
        match &*self.references.borrow() {
            references::InUse::AsLoaded => {}
            references::InUse::Set(r) => cpu.set_references(Some(r))?,
            references::InUse::Cleared => cpu.set_references(None)?,
        }
        if !self.switched.replace(true) {
            web_sys::console::warn_1(&format!("tokenclip: {why}; continuing on the CPU (WebAssembly SIMD)").into());
        }
        let cpu = Rc::new(cpu);
        *self.engine.borrow_mut() = cpu.clone();
        *self.turns.borrow_mut() = turns;
        Ok(cpu)
    }

    pub(super) async fn detect(&self, value: &JsValue) -> Result<JsValue, WebError> {
        let named = image::read(value, &ImageLimits::default()).await?;
        let size = self.engine().config().input_size;
        let pixels = detection_pixels(&named.image, size as u32, &named.name)?;
        let d = self.run(&pixels).await?;
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
        let config = self.engine().config().clone();
        set("layers", config.feature_layers.len().into());
        // The map lies in [0, layers + few-shot weight].
        let weight = config.few_shot.as_ref().map_or(0.0, |f| f64::from(f.weight));
        set("mapRange", (config.feature_layers.len() as f64 + weight).into());
        if let Some(top) = d.few_shot_max {
            set("fewShotMax", top.into());
        }
        set("backend", self.engine().backend().into());
        Ok(o.into())
    }
}
