//! Launchers for `shaders/norm.wgsl`.

use super::params::LayerNormParams;
use super::{dim, GpuBackend, GpuTensor};
use crate::backend::{check, BackendError, DType, TensorInfo};

/// Workgroup size for rows of `cols` elements: 64 for narrow rows, else 256.
pub fn row_wg(cols: usize) -> f64 {
    if cols <= 64 {
        64.0
    } else {
        256.0
    }
}

/// Records a layer norm; shapes as [`crate::backend::Backend::layer_norm`].
pub fn layer_norm(
    gpu: &GpuBackend,
    x: &GpuTensor,
    gamma: &GpuTensor,
    beta: &GpuTensor,
    eps: f32,
) -> Result<GpuTensor, BackendError> {
    const OP: &str = "layer_norm";
    let (rows, cols) = check::layer_norm(x, gamma, beta, eps)?;
    let out = gpu.alloc(OP, x.shape().to_vec())?;
    let params = LayerNormParams { rows: dim(OP, "rows", rows)?, cols: dim(OP, "columns", cols)?, eps, _pad: 0 };
    let f16 = f64::from(u8::from(gamma.dtype() == DType::F16));
    let grid = gpu.grid(rows as u64, OP)?;
    gpu.dispatch(
        "layer_norm",
        &[row_wg(cols), f16],
        &[x.binding(), gamma.binding(), beta.binding(), out.binding()],
        bytemuck::bytes_of(&params),
        grid,
    )?;
    Ok(out)
}

/// Records a row L2 normalisation; shapes as [`crate::backend::Backend::l2_normalize`].
pub fn l2_normalize(gpu: &GpuBackend, x: &GpuTensor) -> Result<GpuTensor, BackendError> {
    const OP: &str = "l2_normalize";
    let (rows, cols) = check::rows_cols(OP, "x", x)?;
    let out = gpu.alloc(OP, x.shape().to_vec())?;
    let params = LayerNormParams { rows: dim(OP, "rows", rows)?, cols: dim(OP, "columns", cols)?, eps: 0.0, _pad: 0 };
    let grid = gpu.grid(rows as u64, OP)?;
    gpu.dispatch("l2_normalize", &[row_wg(cols)], &[x.binding(), out.binding()], bytemuck::bytes_of(&params), grid)?;
    Ok(out)
}
