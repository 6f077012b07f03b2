//! Launcher for `shaders/matmul.wgsl`.

use super::params::MatmulParams;
use super::{dim, GpuBackend, GpuTensor};
use crate::backend::{check, BLayout, BackendError, DType, TensorInfo};

const TILE: usize = 64;

/// Records `c = a · b (+ bias)`; shapes as [`crate::backend::Backend::matmul`].
pub fn matmul(
    gpu: &GpuBackend,
    a: &GpuTensor,
    b: &GpuTensor,
    bias: Option<&GpuTensor>,
    layout: BLayout,
) -> Result<GpuTensor, BackendError> {
    const OP: &str = "matmul";
    let d = check::matmul(a, b, bias, layout)?;
    let mut shape = a.shape().to_vec();
    if let Some(last) = shape.last_mut() {
        *last = d.n;
    }
    let out = gpu.alloc(OP, shape)?;
    let params = MatmulParams {
        m: dim(OP, "rows", d.m)?,
        n: dim(OP, "columns", d.n)?,
        k: dim(OP, "inner dimension", d.k)?,
        a_batch_stride: dim(OP, "batch stride", d.m * d.k)?,
        b_batch_stride: if d.b_batched { dim(OP, "batch stride", d.k * d.n)? } else { 0 },
        _pad: [0; 3],
    };
    let overrides = [
        f64::from(u8::from(b.dtype() == DType::F16)),
        f64::from(u8::from(layout == BLayout::Transposed)),
        f64::from(u8::from(bias.is_some())),
    ];
    let bias_binding = match bias {
        Some(t) => t.binding(),
        None => super::Binding { buffer: &gpu.placeholder, bytes: 16 },
    };
    let grid = (
        dim(OP, "column tiles", d.n.div_ceil(TILE))?,
        dim(OP, "row tiles", d.m.div_ceil(TILE))?,
        dim(OP, "batch", d.batch)?,
    );
    gpu.dispatch(
        "matmul",
        &overrides,
        &[a.binding(), b.binding(), bias_binding, out.binding()],
        bytemuck::bytes_of(&params),
        grid,
    )?;
    Ok(out)
}
