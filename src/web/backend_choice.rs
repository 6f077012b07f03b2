//! `LoadOptions.backend`: which backend a browser detector loads on, decided before any model
//! byte is fetched ("auto" by default: WebGPU when an adapter opens, else the wasm CPU backend).

use wasm_bindgen::JsValue;

use super::error::{ErrorKind, WebError};
use super::gpu;

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

/// The reason "auto" gives for the CPU when WebGPU is missing (the first sentence of `e`).
fn no_webgpu(e: &WebError) -> String {
    let first = e.message.split(". ").next().unwrap_or(&e.message).trim_end_matches('.');
    format!("WebGPU is unavailable: {first}")
}
