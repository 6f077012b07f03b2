//! Launcher for `shaders/patch_embed.wgsl` (im2col), followed by the matmul kernel.

use super::params::Im2colParams;
use super::{dim, GpuBackend, GpuTensor};
use crate::backend::{check, BLayout, BackendError};

const WG: u64 = 256;

/// Records the patch embedding; shapes as [`crate::backend::Backend::patch_embed`].
pub fn patch_embed(gpu: &GpuBackend, image: &GpuTensor, weight: &GpuTensor) -> Result<GpuTensor, BackendError> {
    const OP: &str = "patch_embed";
    let d = check::patch_embed(image, weight)?;
    let rows = d.grid_h * d.grid_w;
    let row_len = d.channels * d.patch * d.patch;
    let cols = gpu.alloc(OP, vec![rows, row_len])?;
    let params = Im2colParams {
        channels: dim(OP, "channels", d.channels)?,
        height: dim(OP, "height", d.height)?,
        width: dim(OP, "width", d.width)?,
        patch_size: dim(OP, "patch", d.patch)?,
        grid_w: dim(OP, "grid width", d.grid_w)?,
        total: dim(OP, "elements", rows * row_len)?,
        _pad: [0; 2],
    };
    let grid = gpu.grid(((rows * row_len) as u64).div_ceil(WG), OP)?;
    gpu.dispatch("im2col", &[], &[image.binding(), cols.binding()], bytemuck::bytes_of(&params), grid)?;
    // The weight [O, C, p, p] is the [O, C·p·p] matrix of a Linear layer.
    let flat = GpuTensor { buf: weight.buf.clone(), shape: vec![d.out, row_len], dtype: weight.dtype };
    super::matmul::matmul(gpu, &cols, &flat, None, BLayout::Transposed)
}
