//! The run-time choice between the GPU and the CPU backend, resolved once, and the detector
//! that moves to the CPU when the GPU fails.

mod detector;

pub use detector::DeviceDetector;

use std::fmt;
use std::str::FromStr;

use crate::backend::cpu::CpuBackend;
use crate::backend::gpu::{GpuBackend, GpuOptions};
use crate::backend::BackendError;

/// Which backend the user asked for (`--backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    /// A GPU adapter if one works and is a real GPU, else the CPU: a software renderer
    /// (lavapipe, llvmpipe, SwiftShader) is much slower than the CPU backend, so it is used only
    /// when asked for by name (`--adapter`) or with [`BackendChoice::Gpu`].
    #[default]
    Auto,
    /// A GPU adapter or an error.
    Gpu,
    /// The CPU.
    Cpu,
}

impl FromStr for BackendChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(BackendChoice::Auto),
            "gpu" => Ok(BackendChoice::Gpu),
            "cpu" => Ok(BackendChoice::Cpu),
            other => Err(format!("unknown backend {other:?}; expected auto, gpu or cpu")),
        }
    }
}

impl fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Gpu => "gpu",
            BackendChoice::Cpu => "cpu",
        })
    }
}

/// How wgpu names an adapter that runs on the CPU (lavapipe, llvmpipe, SwiftShader, WARP).
pub const SOFTWARE_ADAPTER: &str = "Cpu";

/// An opened backend: model code matches on it once and runs generically on the inner value.
#[derive(Debug)]
pub enum Device {
    /// The wgpu backend.
    Gpu(Box<GpuBackend>),
    /// The CPU backend.
    Cpu(CpuBackend),
}

impl Device {
    /// Opens the backend `choice` names. With [`BackendChoice::Auto`] a GPU failure, or an
    /// adapter that is a software renderer, falls back to the CPU, and why is returned beside
    /// it, for the caller to show.
    ///
    /// # Errors
    /// With [`BackendChoice::Gpu`], whatever [`GpuBackend::new`] returns.
    pub async fn open(choice: BackendChoice, gpu: &GpuOptions) -> Result<(Device, Option<String>), BackendError> {
        match choice {
            BackendChoice::Cpu => Ok((Device::Cpu(CpuBackend::new()), None)),
            BackendChoice::Gpu => Ok((Device::Gpu(Box::new(GpuBackend::new(gpu).await?)), None)),
            BackendChoice::Auto => match GpuBackend::new(gpu).await {
                Ok(g) if gpu.adapter.is_none() && g.context().adapter.device_type == SOFTWARE_ADAPTER => {
                    let why = format!(
                        "the only GPU adapter, {}, is a software renderer, slower than the CPU backend; \
                         --backend gpu uses it anyway",
                        g.context().adapter.name
                    );
                    Ok((Device::Cpu(CpuBackend::new()), Some(why)))
                }
                Ok(g) => Ok((Device::Gpu(Box::new(g)), None)),
                Err(e) => Ok((Device::Cpu(CpuBackend::new()), Some(e.to_string()))),
            },
        }
    }
}
