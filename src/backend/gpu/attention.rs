//! Launcher for `shaders/attention.wgsl`.

use super::params::AttentionParams;
use super::{dim, GpuBackend, GpuTensor};
use crate::backend::cpu::attention::qkv_offsets;
use crate::backend::{check, AttentionKind, AttentionMask, BackendError, TensorInfo};

/// Queries per workgroup (the WGSL `QUERIES`).
const QUERIES: usize = 64;

/// Records fused attention; shapes as [`crate::backend::Backend::attention`].
pub fn attention(
    gpu: &GpuBackend,
    qkv: &GpuTensor,
    heads: usize,
    kind: AttentionKind,
    mask: AttentionMask,
) -> Result<GpuTensor, BackendError> {
    const OP: &str = "attention";
    let d = check::attention(qkv, heads)?;
    let mut shape = qkv.shape().to_vec();
    if let Some(last) = shape.last_mut() {
        *last = d.width;
    }
    let out = gpu.alloc(OP, shape)?;
    let (q, k, v) = qkv_offsets(kind, d.width);
    let params = AttentionParams {
        tokens: dim(OP, "tokens", d.tokens)?,
        head_dim: dim(OP, "head width", d.head_dim)?,
        row_stride: dim(OP, "row stride", 3 * d.width)?,
        out_stride: dim(OP, "width", d.width)?,
        q_offset: dim(OP, "offset", q)?,
        k_offset: dim(OP, "offset", k)?,
        v_offset: dim(OP, "offset", v)?,
        causal: u32::from(mask == AttentionMask::Causal),
        scale: 1.0 / (d.head_dim as f32).sqrt(),
        _pad: [0; 3],
    };
    let grid =
        (dim(OP, "query blocks", d.tokens.div_ceil(QUERIES))?, dim(OP, "heads", heads)?, dim(OP, "batch", d.batch)?);
    gpu.dispatch("attention", &[], &[qkv.binding(), out.binding()], bytemuck::bytes_of(&params), grid)?;
    Ok(out)
}
