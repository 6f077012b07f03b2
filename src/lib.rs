//! tokenclip: zero-shot anomaly detection (TokenCLIP on CLIP and AnomalyCLIP) on WebGPU and the
//! CPU, natively and in the browser.
//!
//! The crate is built in layers: [`backend`] is the tensor-op interface with its GPU (wgpu,
//! WGSL kernels under `shaders/`) and CPU implementations; model code is written once against
//! it. [`Device`] is the one place where the `auto | gpu | cpu` choice is resolved.
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod backend;
pub mod clip;
pub mod device;
pub mod eval;
pub mod hub;
pub mod io;
#[cfg(not(target_arch = "wasm32"))]
pub mod serve;
#[cfg(not(target_arch = "wasm32"))]
pub mod shard;
pub mod tokenclip;
#[cfg(not(target_arch = "wasm32"))]
pub mod train;
#[cfg(target_arch = "wasm32")]
pub mod web;

pub use backend::{Backend, BackendError};
pub use clip::ModelError;
pub use device::{BackendChoice, Device, DeviceDetector};
pub use io::InputError;
pub use tokenclip::{Detection, Detector};

/// Every error the library returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tensor op or the device failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// A model file or checkpoint is missing, damaged or of an unsupported kind.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// An image or other input could not be read, or an output not written.
    #[error(transparent)]
    Input(#[from] InputError),
    /// A dataset, ground-truth mask or cached evaluation result could not be used.
    #[error(transparent)]
    Dataset(#[from] eval::dataset::DatasetError),
    /// A named model could not be found, downloaded, verified or cached.
    #[error(transparent)]
    Hub(#[from] hub::HubError),
    /// A shard could not be found, or shards could not be merged (native only).
    #[cfg(not(target_arch = "wasm32"))]
    #[error(transparent)]
    Shard(#[from] shard::ShardError),
}
