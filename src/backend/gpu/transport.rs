//! Launchers for `shaders/transport.wgsl`.

use super::params::{SinkhornParams as SinkhornUniform, TopKParams};
use super::{dim, GpuBackend, GpuTensor};
use crate::backend::{check, BackendError, SinkhornParams, TensorInfo};

/// Records Sinkhorn; shapes as [`crate::backend::Backend::sinkhorn`].
pub fn sinkhorn(gpu: &GpuBackend, cost: &GpuTensor, p: SinkhornParams) -> Result<GpuTensor, BackendError> {
    const OP: &str = "sinkhorn";
    let (b, n, m) = check::sinkhorn(cost, &p)?;
    let plan = gpu.alloc(OP, cost.shape().to_vec())?;
    let log_r = gpu.alloc(OP, vec![b, n])?;
    let params = SinkhornUniform {
        tokens: dim(OP, "tokens", n)?,
        subspaces: dim(OP, "subspaces", m)?,
        max_iters: p.max_iters,
        _pad0: 0,
        inv_eps: 1.0 / p.eps,
        tol: p.tol,
        _pad1: [0; 2],
    };
    gpu.dispatch(
        "sinkhorn",
        &[],
        &[cost.binding(), plan.binding(), log_r.binding()],
        bytemuck::bytes_of(&params),
        (dim(OP, "batch", b)?, 1, 1),
    )?;
    Ok(plan)
}

/// Records top-K with renormalisation; shapes as [`crate::backend::Backend::top_k_renorm`].
pub fn top_k_renorm(gpu: &GpuBackend, x: &GpuTensor, k: usize) -> Result<GpuTensor, BackendError> {
    const OP: &str = "top_k_renorm";
    let (rows, m) = check::top_k_renorm(x, k)?;
    let out = gpu.alloc(OP, x.shape().to_vec())?;
    let params =
        TopKParams { rows: dim(OP, "rows", rows)?, cols: dim(OP, "columns", m)?, k: dim(OP, "k", k)?, _pad: 0 };
    let grid = gpu.grid((rows as u64).div_ceil(64), OP)?;
    gpu.dispatch("top_k_renorm", &[], &[x.binding(), out.binding()], bytemuck::bytes_of(&params), grid)?;
    Ok(out)
}
