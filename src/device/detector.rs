//! A detector on the opened [`Device`] that, when allowed (`--backend auto`), moves to the CPU
//! the first time the GPU fails: the image that failed is redone there and every later one runs
//! there too, so a lost or exhausted GPU costs speed, never results.

use crate::backend::cpu::CpuBackend;
use crate::backend::gpu::GpuBackend;
use crate::backend::{Backend, BackendError};
use crate::clip::config::ModelConfig;
use crate::clip::weights::TensorSource;
use crate::{Detection, Detector, Error};

use super::Device;

/// The detector and the backend it runs on.
enum Placed {
    Gpu(Box<GpuBackend>, Box<Detector<GpuBackend>>),
    Cpu(CpuBackend, Box<Detector<CpuBackend>>),
}

/// A [`Detector`] bound to its backend, with the GPU-to-CPU fail-over.
pub struct DeviceDetector {
    placed: Placed,
    failover: bool,
    /// Set when the run moved to the CPU, until [`DeviceDetector::take_switch`] reports it.
    switch: Option<String>,
    /// Why the run is on the CPU after a GPU fault, for [`DeviceDetector::describe`].
    fault: Option<String>,
}

impl std::fmt::Debug for DeviceDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceDetector").field("backend", &self.describe()).finish()
    }
}

/// The fail-over target: the model loaded on a fresh CPU backend.
fn on_cpu(src: &dyn TensorSource, config: &ModelConfig) -> Result<Placed, Error> {
    let cpu = CpuBackend::new();
    let detector = Detector::load(src, config, &cpu)?;
    Ok(Placed::Cpu(cpu, Box::new(detector)))
}

/// The GPU fault `e`, if it is one a fail-over may answer.
fn device_fault(e: &Error) -> Option<&BackendError> {
    match e {
        Error::Backend(b) if b.is_device_fault() => Some(b),
        _ => None,
    }
}

impl DeviceDetector {
    /// Loads the model from `src` onto `device`. With `failover`, a GPU that fails while the
    /// weights are uploaded, or during any later pass, is replaced by the CPU backend.
    ///
    /// # Errors
    /// What [`Detector::load`] returns (a GPU fault only without `failover`).
    pub fn load(device: Device, failover: bool, src: &dyn TensorSource, config: &ModelConfig) -> Result<Self, Error> {
        let (placed, fault) = match device {
            Device::Cpu(cpu) => {
                let detector = Detector::load(src, config, &cpu)?;
                (Placed::Cpu(cpu, Box::new(detector)), None)
            }
            Device::Gpu(gpu) => match Detector::load(src, config, &*gpu) {
                Ok(detector) => (Placed::Gpu(gpu, Box::new(detector)), None),
                Err(e) => match device_fault(&e) {
                    Some(b) if failover => {
                        let why = format!("{b} (while loading the model)");
                        drop(gpu);
                        (on_cpu(src, config)?, Some(why))
                    }
                    _ => return Err(e),
                },
            },
        };
        let switch = fault.as_ref().map(|why| switch_message(why));
        Ok(DeviceDetector { placed, failover, switch, fault })
    }

    /// Detects anomalies in one preprocessed image (see [`Detector::detect`]). On a GPU fault
    /// with fail-over allowed, the model is loaded on the CPU from `src` and the image redone
    /// there; [`DeviceDetector::take_switch`] then says so once.
    ///
    /// # Errors
    /// What [`Detector::detect`] returns; a GPU fault only without fail-over.
    pub async fn detect(&mut self, src: &dyn TensorSource, pixels: &[f32]) -> Result<Detection, Error> {
        if let Placed::Gpu(be, detector) = &self.placed {
            let result = detector.detect(be, pixels).await;
            if let Some(done) = self.recover(src, result)? {
                return Ok(done);
            }
        }
        match &self.placed {
            Placed::Cpu(be, detector) => detector.detect(be, pixels).await,
            Placed::Gpu(be, detector) => detector.detect(be, pixels).await,
        }
    }

    /// Detects anomalies in several preprocessed images in one batched pass (see
    /// [`Detector::detect_batch`]), with the same fail-over as [`Self::detect`]: after a GPU
    /// fault the whole batch is redone on the CPU.
    ///
    /// # Errors
    /// What [`Detector::detect_batch`] returns; a GPU fault only without fail-over.
    pub async fn detect_batch(&mut self, src: &dyn TensorSource, images: &[&[f32]]) -> Result<Vec<Detection>, Error> {
        if let Placed::Gpu(be, detector) = &self.placed {
            let result = detector.detect_batch(be, images).await;
            if let Some(done) = self.recover(src, result)? {
                return Ok(done);
            }
        }
        match &self.placed {
            Placed::Cpu(be, detector) => detector.detect_batch(be, images).await,
            Placed::Gpu(be, detector) => detector.detect_batch(be, images).await,
        }
    }

    /// The batch size [`Self::detect_batch`] should use when `requested` images wait: on a
    /// hardware GPU (`None` asks for the default) 8, on the CPU and on software GPUs 1, where
    /// batching measured a gain under a tenth (BENCHMARKS.md, "Batching") that does not pay
    /// for the later first answer. On a GPU it is capped so the largest activation of the batch
    /// (the MLP's hidden layer, `B × T × 4W` f32) fits one tensor binding.
    pub fn batch_size(&self, requested: Option<usize>) -> usize {
        let gains = matches!(&self.placed, Placed::Gpu(be, _) if !be.is_software());
        let wanted = requested.unwrap_or(if gains { 8 } else { 1 }).max(1);
        match &self.placed {
            Placed::Gpu(be, d) => {
                let v = &d.config().clip.vision;
                let grid = d.input_size() / v.patch_size;
                let per_image = (grid * grid + 1) as u64 * v.mlp_width.max(3 * v.width) as u64 * 4;
                let fits = (be.tensor_byte_limit() / per_image.max(1)).max(1);
                wanted.min(usize::try_from(fits).unwrap_or(usize::MAX))
            }
            Placed::Cpu(..) => wanted,
        }
    }

    /// The patch embeddings of `layers` of one preprocessed image (see
    /// [`Detector::patch_embeddings`]), with the same fail-over as [`Self::detect`].
    pub async fn patch_embeddings(
        &mut self,
        src: &dyn TensorSource,
        pixels: &[f32],
        layers: &[usize],
    ) -> Result<Vec<Vec<f32>>, Error> {
        if let Placed::Gpu(be, detector) = &self.placed {
            let result = detector.patch_embeddings(be, pixels, layers).await;
            if let Some(done) = self.recover(src, result)? {
                return Ok(done);
            }
        }
        match &self.placed {
            Placed::Cpu(be, detector) => detector.patch_embeddings(be, pixels, layers).await,
            Placed::Gpu(be, detector) => detector.patch_embeddings(be, pixels, layers).await,
        }
    }

    /// Loads the few-shot memory `config` names from `src` (a [`crate::tokenclip::few_shot::WithMemory`])
    /// onto the current backend; later fail-overs read it from the `src` given to `detect`.
    pub fn set_few_shot(&mut self, src: &dyn TensorSource, config: &ModelConfig) -> Result<(), Error> {
        use crate::tokenclip::few_shot::FewShotMemory;
        match &mut self.placed {
            Placed::Gpu(be, d) => {
                let m = FewShotMemory::load(src, &**be, config)?;
                d.set_few_shot(m);
            }
            Placed::Cpu(be, d) => {
                let m = FewShotMemory::load(src, be, config)?;
                d.set_few_shot(m);
            }
        }
        Ok(())
    }

    /// A GPU pass's `result`: `Some` when it stands (or `Err` when it is not a fault to fail over
    /// from); `None` when the model moved to the CPU and the caller must redo the pass there.
    fn recover<T>(&mut self, src: &dyn TensorSource, result: Result<T, Error>) -> Result<Option<T>, Error> {
        let why = match &result {
            Err(e) if self.failover => match device_fault(e) {
                Some(b) => b.to_string(),
                None => return result.map(Some),
            },
            _ => return result.map(Some),
        };
        let config = self.config().clone();
        // The GPU's buffers go before the CPU copy of the weights arrives.
        self.placed = on_cpu(src, &config)?;
        self.switch = Some(switch_message(&why));
        self.fault = Some(why);
        Ok(None)
    }

    /// The message for a switch to the CPU not yet reported, once.
    pub fn take_switch(&mut self) -> Option<String> {
        self.switch.take()
    }

    /// The model's configuration.
    pub fn config(&self) -> &ModelConfig {
        match &self.placed {
            Placed::Gpu(_, d) => d.config(),
            Placed::Cpu(_, d) => d.config(),
        }
    }

    /// The input side S the images must be preprocessed to.
    pub fn input_size(&self) -> usize {
        self.config().input_size
    }

    /// The backend in use, and why the CPU if a GPU fault put the run there.
    pub fn describe(&self) -> String {
        let be = match &self.placed {
            Placed::Gpu(be, _) => be.describe(),
            Placed::Cpu(be, _) => be.describe(),
        };
        match &self.fault {
            Some(why) => format!("{be}, after the GPU failed: {why}"),
            None => be,
        }
    }
}

fn switch_message(why: &str) -> String {
    format!("the GPU failed ({why}); continuing on the CPU (the image that failed is redone there)")
}
