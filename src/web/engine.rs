//! Where a browser detector runs: the page's WebGPU device, or the CPU backend compiled to wasm
//! (WebAssembly SIMD, one thread), chosen by `LoadOptions.backend` ("auto" by default: WebGPU
//! when an adapter opens, else the CPU). Under "auto" a GPU that fails (device lost, out of
//! memory) while the model loads or during any later pass hands over to the CPU: the model is
//! loaded again there and the image that failed is redone, as `--backend auto` does natively.

use std::cell::RefCell;
use std::rc::Rc;

use crate::backend::cpu::CpuBackend;
use crate::backend::gpu::GpuBackend;
use crate::backend::Backend;
use crate::clip::config::ModelConfig;
use crate::clip::weights::TensorSource;
use crate::{Detection, Detector, Error};

pub use super::backend_choice::{BackendChoice, Target};
use super::error::WebError;
use super::gpu::{self, Turns};
use super::memory;
use super::source::{self, Progress};
use super::tensors::JsTensorSource;

/// A loaded detector on its backend.
pub(super) enum Engine {
    /// On the shared WebGPU backend; `reload` is where "auto" reloads the model for the CPU
    /// after a GPU fault. Field order matters: the weights go back to the pool before
    /// `_release` empties it.
    Gpu {
        detector: Box<Detector<GpuBackend>>,
        _release: ReleaseOnDrop,
        be: Rc<GpuBackend>,
        adapter: String,
        reload: RefCell<Option<Reload>>,
    },
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

/// Where "auto" finds the model again for the CPU after a GPU fault: the browser's cache when
/// the file is cached (so a GPU user's JS heap does not keep a second copy of the file), else
/// the file's bytes, kept.
pub(super) enum Reload {
    /// The Cache API key.
    Cached(String),
    /// The file itself.
    Bytes(Box<JsTensorSource>),
}

impl Reload {
    /// The model file again, as a tensor source.
    async fn open(self) -> Result<JsTensorSource, WebError> {
        match self {
            Reload::Bytes(src) => Ok(*src),
            Reload::Cached(key) => {
                let progress = Progress::new(None);
                let bytes = source::cached(&key, &progress).await?;
                Ok(JsTensorSource::open(bytes.bytes, bytes.name, progress)?)
            }
        }
    }
}

impl Engine {
    /// Loads the model from `src` on `target`; returns it with the queue its passes take turns
    /// in (the shared GPU's, or its own on the CPU). `cache_key` is where the file is cached,
    /// if it is (see [`Reload`]).
    pub async fn load(
        src: JsTensorSource,
        target: Target,
        cache_key: Option<String>,
    ) -> Result<(Engine, Rc<Turns>), WebError> {
        let auto = match target {
            Target::Cpu { why } => return Ok((on_cpu(&src, why)?, Rc::new(Turns::default()))),
            Target::Gpu { auto } => auto,
        };
        src.progress().report("gpu", 0.0, None, true);
        let shared = gpu::shared_gpu().await?;
        src.progress().report("gpu", 1.0, Some(1.0), true);
        gpu::check_fits(&src.config, shared.be.context(), &shared.adapter)?;
        let be = shared.be.clone();
        let loaded = match Detector::load(&src, &src.config, be.as_ref()) {
            Ok(d) => settle(be.as_ref()).await.map(|()| d),
            Err(e) => Err(e),
        };
        match loaded {
            Ok(d) => {
                src.finish();
                let reload = RefCell::new(auto.then(|| match cache_key {
                    Some(key) => Reload::Cached(key),
                    None => Reload::Bytes(Box::new(src)),
                }));
                let engine = Engine::Gpu {
                    detector: Box::new(d),
                    _release: ReleaseOnDrop(be.clone()),
                    be,
                    adapter: shared.adapter.clone(),
                    reload,
                };
                Ok((engine, shared.turns))
            }
            Err(e) => {
                // What was uploaded before the failure went back to the pool: free it.
                be.release_free_buffers();
                match &e {
                    Error::Backend(b) if b.is_device_fault() && auto => {
                        let why = format!("the GPU failed while loading the model ({})", fault_text(b));
                        Ok((on_cpu(&src, Some(why))?, Rc::new(Turns::default())))
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

    /// The patch embeddings of `layers` of preprocessed pixels (a reference's memory).
    pub async fn patch_embeddings(&self, pixels: &[f32], layers: &[usize]) -> Result<Vec<Vec<f32>>, Error> {
        match self {
            Engine::Gpu { detector, be, .. } => detector.patch_embeddings(be.as_ref(), pixels, layers).await,
            Engine::Cpu { detector, be, .. } => detector.patch_embeddings(be, pixels, layers).await,
        }
    }

    /// Uses the memory `references` (settings in the config, tensors by name) from now on, or
    /// none (`None`: zero-shot, also when the model file had a memory of its own).
    pub fn set_references(&mut self, references: Option<&References>) -> Result<(), Error> {
        use crate::tokenclip::few_shot::FewShotMemory;
        match self {
            Engine::Gpu { detector, be, .. } => {
                let m = match references {
                    Some(r) => FewShotMemory::from_tensors(be.as_ref(), &r.config, &r.tensors)?,
                    None => None,
                };
                detector.set_few_shot(m);
            }
            Engine::Cpu { detector, be, .. } => {
                let m = match references {
                    Some(r) => FewShotMemory::from_tensors(be, &r.config, &r.tensors)?,
                    None => None,
                };
                detector.set_few_shot(m);
            }
        }
        Ok(())
    }

    /// After `e` from [`Engine::detect`]: under "auto", when `e` is a GPU fault, the model
    /// loaded on the CPU (from the cache or the kept bytes) with its own queue, and why; the
    /// caller redoes the image there. `Ok(None)` when `e` is not for a fail-over.
    ///
    /// # Errors
    /// Reloading fails: the file left the cache (`storage`), or does not fit in wasm memory
    /// (`memory`); the message says the GPU failed first.
    pub async fn fail_over(&self, e: &Error) -> Result<Option<(Engine, Rc<Turns>, String)>, WebError> {
        let Error::Backend(b) = e else { return Ok(None) };
        if !b.is_device_fault() {
            return Ok(None);
        }
        let Engine::Gpu { reload, .. } = self else { return Ok(None) };
        let Some(reload) = reload.borrow_mut().take() else { return Ok(None) };
        let why = format!("the GPU failed during a pass ({})", fault_text(b));
        let reloaded = match reload.open().await {
            Ok(src) => on_cpu(&src, Some(why.clone())),
            Err(err) => Err(err),
        };
        match reloaded {
            Ok(engine) => Ok(Some((engine, Rc::new(Turns::default()), why))),
            Err(err) => {
                Err(WebError::new(err.kind, format!("{why}, and the CPU could not take over: {}", err.message)))
            }
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

/// A memory of reference images built in the browser (`detector.setReferences`), kept on the
/// host so a fail-over to the CPU takes it along.
pub(super) struct References {
    /// The model's configuration with the memory's settings.
    pub config: ModelConfig,
    /// The memory tensors by name, f32.
    pub tensors: std::collections::BTreeMap<String, Vec<f32>>,
}

/// Waits for the weights' upload to finish on the GPU (one tiny readback), so a device that
/// fails or runs out of memory while they upload (WebGPU reports it late) fails the load,
/// where "auto" can still choose the CPU, not the first image.
async fn settle(be: &GpuBackend) -> Result<(), Error> {
    let probe = be.upload(&[0.0], &[1])?;
    be.read(&probe).await?;
    Ok(())
}

/// A GPU fault as the reason for a fail-over (without the CLI's advice a lost device carries).
fn fault_text(b: &crate::BackendError) -> String {
    match b {
        crate::BackendError::DeviceLost(m) => format!("the GPU device was lost: {m}"),
        other => other.to_string(),
    }
}

fn threads(n: usize) -> String {
    if n == 1 {
        "1 thread".into()
    } else {
        format!("{n} threads")
    }
}

/// The model loaded on a new wasm CPU backend, after checking it fits in wasm memory.
fn on_cpu(src: &JsTensorSource, why: Option<String>) -> Result<Engine, WebError> {
    memory::check_cpu_fits(&src.config, src.source_name())?;
    let be = CpuBackend::new();
    let detector = Detector::load(src, &src.config, &be)?;
    src.finish();
    Ok(Engine::Cpu { detector: Box::new(detector), be, why })
}
