//! Launchers for `shaders/copy.wgsl`.

use super::params::CopyParams;
use super::{dim, GpuBackend, GpuTensor};
use crate::backend::{check, BackendError};

/// Workgroup size `copy_range` is built with (its WGSL default).
const WG: u64 = 256;

/// Records `dst[dst_offset ..][..n] = src[src_offset ..][..n]`.
fn copy_range(
    gpu: &GpuBackend,
    op: &'static str,
    src: &GpuTensor,
    src_offset: usize,
    dst: &GpuTensor,
    dst_offset: usize,
    n: usize,
) -> Result<(), BackendError> {
    let params = CopyParams {
        n: dim(op, "elements", n)?,
        src_offset: dim(op, "offset", src_offset)?,
        dst_offset: dim(op, "offset", dst_offset)?,
        _pad: 0,
    };
    let grid = gpu.grid((n as u64).div_ceil(WG), op)?;
    gpu.dispatch("copy_range", &[], &[src.binding(), dst.binding()], bytemuck::bytes_of(&params), grid)
}

/// Records a row slice.
pub fn slice_rows(gpu: &GpuBackend, x: &GpuTensor, start: usize, count: usize) -> Result<GpuTensor, BackendError> {
    let cols = check::slice_rows(x, start, count)?;
    let out = gpu.alloc("slice_rows", vec![count, cols])?;
    copy_range(gpu, "slice_rows", x, start * cols, &out, 0, count * cols)?;
    Ok(out)
}

/// Records a row concatenation (two copies into one output).
pub fn concat_rows(gpu: &GpuBackend, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor, BackendError> {
    let (ra, rb, cols) = check::concat_rows(a, b)?;
    let out = gpu.alloc("concat_rows", vec![ra + rb, cols])?;
    copy_range(gpu, "concat_rows", a, 0, &out, 0, ra * cols)?;
    copy_range(gpu, "concat_rows", b, 0, &out, ra * cols, rb * cols)?;
    Ok(out)
}
