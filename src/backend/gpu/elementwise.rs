//! Launchers for `shaders/elementwise.wgsl`.

use super::params::ElementwiseParams;
use super::{dim, Binding, GpuBackend, GpuTensor};
use crate::backend::{check, BackendError, TensorInfo};

/// Workgroup size the elementwise kernels are built with (their WGSL default).
const WG: u64 = 256;

fn launch(
    gpu: &GpuBackend,
    op: &'static str,
    inputs: &[&GpuTensor],
    factor: f32,
    shift: f32,
) -> Result<GpuTensor, BackendError> {
    let x = inputs[0];
    let out = gpu.alloc(op, x.shape().to_vec())?;
    let params = ElementwiseParams { n: dim(op, "elements", x.len())?, factor, shift, _pad: 0 };
    let mut bindings: Vec<Binding<'_>> = inputs.iter().map(|t| t.binding()).collect();
    bindings.push(out.binding());
    let grid = gpu.grid((x.len() as u64).div_ceil(WG), op)?;
    gpu.dispatch(op, &[], &bindings, bytemuck::bytes_of(&params), grid)?;
    Ok(out)
}

/// Records QuickGELU.
pub fn quick_gelu(gpu: &GpuBackend, x: &GpuTensor) -> Result<GpuTensor, BackendError> {
    check::rows_cols("quick_gelu", "x", x)?;
    launch(gpu, "quick_gelu", &[x], 0.0, 0.0)
}

/// Records exact GELU.
pub fn gelu(gpu: &GpuBackend, x: &GpuTensor) -> Result<GpuTensor, BackendError> {
    check::rows_cols("gelu", "x", x)?;
    launch(gpu, "gelu", &[x], 0.0, 0.0)
}

/// Records `a + b`.
pub fn add(gpu: &GpuBackend, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor, BackendError> {
    check::same_shape("add", a, b)?;
    launch(gpu, "add", &[a, b], 0.0, 0.0)
}

/// Records `x · factor`.
pub fn scale(gpu: &GpuBackend, x: &GpuTensor, factor: f32) -> Result<GpuTensor, BackendError> {
    check::rows_cols("scale", "x", x)?;
    launch(gpu, "scale", &[x], factor, 0.0)
}

/// Records `x · factor + shift`.
pub fn affine(gpu: &GpuBackend, x: &GpuTensor, factor: f32, shift: f32) -> Result<GpuTensor, BackendError> {
    check::rows_cols("affine", "x", x)?;
    launch(gpu, "affine", &[x], factor, shift)
}
