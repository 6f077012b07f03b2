//! Launcher for `shaders/resize.wgsl`.

use super::params::ResizeParams;
use super::{dim, GpuBackend, GpuTensor};
use crate::backend::{check, BackendError};

const WG: u64 = 256;

/// Records a bilinear resize; shapes as [`crate::backend::Backend::resize_bilinear`].
pub fn resize_bilinear(gpu: &GpuBackend, x: &GpuTensor, out_h: usize, out_w: usize) -> Result<GpuTensor, BackendError> {
    const OP: &str = "resize_bilinear";
    let (c, h, w) = check::resize_bilinear(x, out_h, out_w)?;
    let out = gpu.alloc(OP, vec![c, out_h, out_w])?;
    let params = ResizeParams {
        channels: dim(OP, "channels", c)?,
        in_h: dim(OP, "height", h)?,
        in_w: dim(OP, "width", w)?,
        out_h: dim(OP, "output height", out_h)?,
        out_w: dim(OP, "output width", out_w)?,
        scale_h: h as f32 / out_h as f32,
        scale_w: w as f32 / out_w as f32,
        _pad: 0,
    };
    let grid = gpu.grid(((c * out_h * out_w) as u64).div_ceil(WG), OP)?;
    gpu.dispatch("resize_bilinear", &[], &[x.binding(), out.binding()], bytemuck::bytes_of(&params), grid)?;
    Ok(out)
}
