//! Where a browser detector runs: the page's WebGPU device, or the CPU backend compiled to wasm
//! (WebAssembly SIMD, one thread), chosen by `LoadOptions.backend` ("auto" by default: WebGPU
//! when an adapter opens, else the CPU).

use std::rc::Rc;

use wasm_bindgen::JsValue;

use crate::backend::cpu::CpuBackend;
use crate::backend::gpu::GpuBackend;
use crate::clip::config::ModelConfig;
use crate::clip::weights::TensorSource;
use crate::{Detection, Detector, Error};

use super::error::{ErrorKind, WebError};
use super::gpu::{self, Turns};
use super::memory;
use super::tensors::JsTensorSource;

/// What `LoadOptions.backend` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// WebGPU when an adapter opens (and the model fits it), else the CPU.
    #[default]
    Auto,
    /// WebGPU only: no adapter is the typed `webgpu-unavailable` error.
    WebGpu,
    /// The wasm CPU backend.
    Cpu,
}

impl BackendChoice {
    /// Parses the option (`undefined`/`null` is [`BackendChoice::Auto`]).
    ///
    /// # Errors
    /// `argument` for anything but "auto", "webgpu" and "cpu".
    pub fn parse(v: &JsValue) -> Result<Self, WebError> {
        if v.is_undefined() || v.is_null() {
            return Ok(BackendChoice::Auto);
        }
        match v.as_string().as_deref() {
            Some("auto") => Ok(BackendChoice::Auto),
            Some("webgpu") => Ok(BackendChoice::WebGpu),
            Some("cpu") => Ok(BackendChoice::Cpu),
            _ => Err(WebError::argument("backend must be \"auto\", \"webgpu\" or \"cpu\"")),
        }
    }

    /// Decides the backend before any model byte is fetched: an explicit "webgpu" without
    /// WebGPU is refused at once; "auto" opens the shared GPU now and takes the CPU when none
    /// opens (so a model too big for the CPU is refused from its header, see
    /// [`super::memory::check_header`]).
    ///
    /// # Errors
    /// `webgpu-unavailable` for "webgpu" where the browser has no WebGPU; for "auto", a GPU
    /// that opens but fails otherwise.
    pub async fn resolve(self) -> Result<Target, WebError> {
        match self {
            BackendChoice::Cpu => Ok(Target::Cpu { why: None }),
            BackendChoice::WebGpu => {
                gpu::webgpu_precheck()?;
                Ok(Target::Gpu { auto: false })
            }
            BackendChoice::Auto => {
                let opened = match gpu::webgpu_precheck() {
                    Ok(()) => gpu::shared_gpu().await.map(drop),
                    Err(e) => Err(e),
                };
                match opened {
                    Ok(()) => Ok(Target::Gpu { auto: true }),
                    Err(e) if e.kind == ErrorKind::WebGpuUnavailable => Ok(Target::Cpu { why: Some(no_webgpu(&e)) }),
                    Err(e) => Err(e),
                }
            }
        }
    }
}

/// The backend a load goes to, decided before the model's bytes are fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// WebGPU; with `auto`, a GPU that fails while the weights upload hands over to the CPU.
    Gpu {
        /// Whether "auto" chose it.
        auto: bool,
    },
    /// The wasm CPU backend, and why if "auto" chose it.
    Cpu {
        /// Why "auto" chose the CPU.
        why: Option<String>,
    },
}

/// A loaded detector on its backend.
pub(super) enum Engine {
    /// On the shared WebGPU backend. Field order matters: the weights go back to the pool
    /// before `_release` empties it.
    Gpu { detector: Box<Detector<GpuBackend>>, _release: ReleaseOnDrop, be: Rc<GpuBackend>, adapter: String },
    /// On the wasm CPU backend; `why` says why "auto" chose it.
    Cpu { detector: Box<Detector<CpuBackend>>, be: CpuBackend, why: Option<String> },
}

/// Frees the shared backend's unused buffers when a detector goes (its weights among them), so a
/// page that loads one model after another does not keep the old weights on the GPU.
pub(super) struct ReleaseOnDrop(Rc<GpuBackend>);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        self.0.release_free_buffers();
    }
}

impl Engine {
    /// Loads the model from `src` on `target`; returns it with the queue its passes take turns
    /// in (the shared GPU's, or its own on the CPU).
    pub async fn load(src: &JsTensorSource, target: Target) -> Result<(Engine, Rc<Turns>), WebError> {
        let auto = match target {
            Target::Cpu { why } => return Ok((on_cpu(src, why)?, Rc::new(Turns::default()))),
            Target::Gpu { auto } => auto,
        };
        src.progress().report("gpu", 0.0, None, true);
        let shared = gpu::shared_gpu().await?;
        src.progress().report("gpu", 1.0, Some(1.0), true);
        gpu::check_fits(&src.config, shared.be.context(), &shared.adapter)?;
        let be = shared.be.clone();
        match Detector::load(src, &src.config, be.as_ref()) {
            Ok(d) => {
                let engine = Engine::Gpu {
                    detector: Box::new(d),
                    _release: ReleaseOnDrop(be.clone()),
                    be,
                    adapter: shared.adapter.clone(),
                };
                Ok((engine, shared.turns))
            }
            Err(e) => {
                // What was uploaded before the failure went back to the pool: free it.
                be.release_free_buffers();
                match &e {
                    Error::Backend(b) if b.is_device_fault() && auto => {
                        let why = format!("the GPU failed while loading the model ({b})");
                        Ok((on_cpu(src, Some(why))?, Rc::new(Turns::default())))
                    }
                    _ => Err(e.into()),
                }
            }
        }
    }

    /// The model's configuration.
    pub fn config(&self) -> &ModelConfig {
        match self {
            Engine::Gpu { detector, .. } => detector.config(),
            Engine::Cpu { detector, .. } => detector.config(),
        }
    }

    /// Detects anomalies in preprocessed pixels.
    pub async fn detect(&self, pixels: &[f32]) -> Result<Detection, Error> {
        match self {
            Engine::Gpu { detector, be, .. } => detector.detect(be.as_ref(), pixels).await,
            Engine::Cpu { detector, be, .. } => detector.detect(be, pixels).await,
        }
    }

    /// "webgpu" or "cpu" (`detector.backend`).
    pub fn backend(&self) -> &'static str {
        match self {
            Engine::Gpu { .. } => "webgpu",
            Engine::Cpu { .. } => "cpu",
        }
    }

    /// The device as a user reads it: the GPU adapter, or the CPU backend.
    pub fn device(&self) -> String {
        match self {
            Engine::Gpu { adapter, .. } => adapter.clone(),
            Engine::Cpu { be, .. } => format!("the CPU (WebAssembly SIMD, {})", threads(be.threads())),
        }
    }

    /// Why "auto" runs on the CPU, if it does.
    pub fn why_cpu(&self) -> Option<String> {
        match self {
            Engine::Cpu { why, .. } => why.clone(),
            Engine::Gpu { .. } => None,
        }
    }
}

fn threads(n: usize) -> String {
    if n == 1 {
        "1 thread".into()
    } else {
        format!("{n} threads")
    }
}

/// The reason "auto" gives for the CPU when WebGPU is missing (the first sentence of `e`).
fn no_webgpu(e: &WebError) -> String {
    let first = e.message.split(". ").next().unwrap_or(&e.message).trim_end_matches('.');
    format!("WebGPU is unavailable: {first}")
}

/// The model loaded on a new wasm CPU backend, after checking it fits in wasm memory.
fn on_cpu(src: &JsTensorSource, why: Option<String>) -> Result<Engine, WebError> {
    memory::check_cpu_fits(&src.config, src.source_name())?;
    let be = CpuBackend::new();
    let detector = Detector::load(src, &src.config, &be)?;
    Ok(Engine::Cpu { detector: Box::new(detector), be, why })
}
