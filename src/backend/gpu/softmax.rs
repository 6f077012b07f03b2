//! Launchers for `shaders/softmax.wgsl`: row softmax and row maximum.

use super::norm::row_wg;
use super::params::SoftmaxParams;
use super::{dim, GpuBackend, GpuTensor};
use crate::backend::{check, BackendError, TensorInfo};

/// Records a row softmax; shapes as [`crate::backend::Backend::softmax`].
pub fn softmax(gpu: &GpuBackend, x: &GpuTensor) -> Result<GpuTensor, BackendError> {
    const OP: &str = "softmax";
    let (rows, cols) = check::rows_cols(OP, "x", x)?;
    let out = gpu.alloc(OP, x.shape().to_vec())?;
    let params = SoftmaxParams { rows: dim(OP, "rows", rows)?, cols: dim(OP, "columns", cols)?, _pad: [0; 2] };
    let grid = gpu.grid(rows as u64, OP)?;
    gpu.dispatch("softmax", &[row_wg(cols)], &[x.binding(), out.binding()], bytemuck::bytes_of(&params), grid)?;
    Ok(out)
}

/// Records a row maximum; shapes as [`crate::backend::Backend::row_max`].
pub fn row_max(gpu: &GpuBackend, x: &GpuTensor) -> Result<GpuTensor, BackendError> {
    const OP: &str = "row_max";
    let (rows, cols) = check::rows_cols(OP, "x", x)?;
    let out = gpu.alloc(OP, vec![rows])?;
    let params = SoftmaxParams { rows: dim(OP, "rows", rows)?, cols: dim(OP, "columns", cols)?, _pad: [0; 2] };
    let grid = gpu.grid(rows as u64, OP)?;
    gpu.dispatch("row_max", &[row_wg(cols)], &[x.binding(), out.binding()], bytemuck::bytes_of(&params), grid)?;
    Ok(out)
}
