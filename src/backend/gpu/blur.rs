//! Launcher for `shaders/blur.wgsl`: two passes, along H then along W.

use super::params::BlurParams;
use super::{dim, GpuBackend, GpuTensor};
use crate::backend::cpu::blur::gaussian_weights;
use crate::backend::{check, Backend, BackendError, TensorInfo};

/// The normalised taps for `sigma`, uploaded on first use and kept.
fn taps(gpu: &GpuBackend, sigma: f32) -> Result<GpuTensor, BackendError> {
    let mut cache = gpu
        .blur_taps
        .lock()
        .map_err(|_| BackendError::Device { op: "gaussian_blur", message: "taps cache lock poisoned".into() })?;
    if let Some(t) = cache.get(&sigma.to_bits()) {
        return Ok(t.clone());
    }
    let taps = gaussian_weights(sigma);
    let t = gpu.upload(&taps, &[taps.len()])?;
    cache.insert(sigma.to_bits(), t.clone());
    Ok(t)
}

const WG: u64 = 256;

/// Records a Gaussian filter; shapes as [`crate::backend::Backend::gaussian_blur`].
pub fn gaussian_blur(gpu: &GpuBackend, x: &GpuTensor, sigma: f32) -> Result<GpuTensor, BackendError> {
    const OP: &str = "gaussian_blur";
    let (c, h, w) = check::gaussian_blur(x, sigma)?;
    let weights = taps(gpu, sigma)?;
    let radius = weights.len() / 2;
    let params = BlurParams {
        channels: dim(OP, "channels", c)?,
        height: dim(OP, "height", h)?,
        width: dim(OP, "width", w)?,
        radius: dim(OP, "radius", radius)?,
    };
    let grid = gpu.grid((x.len() as u64).div_ceil(WG), OP)?;
    let along_h = gpu.alloc(OP, x.shape().to_vec())?;
    gpu.dispatch(
        "gaussian_blur",
        &[0.0],
        &[x.binding(), weights.binding(), along_h.binding()],
        bytemuck::bytes_of(&params),
        grid,
    )?;
    let out = gpu.alloc(OP, x.shape().to_vec())?;
    gpu.dispatch(
        "gaussian_blur",
        &[1.0],
        &[along_h.binding(), weights.binding(), out.binding()],
        bytemuck::bytes_of(&params),
        grid,
    )?;
    Ok(out)
}
