//! Launcher for `shaders/score.wgsl`.

use super::params::ScoreParams;
use super::{dim, GpuBackend, GpuTensor};
use crate::backend::{check, BackendError, ScoreMix};

/// Records token-wise probabilities; shapes as [`crate::backend::Backend::token_probabilities`].
pub fn token_probabilities(
    gpu: &GpuBackend,
    patches: &GpuTensor,
    weights: &GpuTensor,
    text_normal: &GpuTensor,
    text_abnormal: &GpuTensor,
    temperature: f32,
    mix: ScoreMix,
) -> Result<GpuTensor, BackendError> {
    const OP: &str = "token_probabilities";
    let (n, d, m) = check::token_probabilities(patches, weights, text_normal, text_abnormal, temperature)?;
    let out = gpu.alloc(OP, vec![n])?;
    let params = ScoreParams {
        tokens: dim(OP, "tokens", n)?,
        dim: dim(OP, "width", d)?,
        subspaces: dim(OP, "subspaces", m)?,
        mix: match mix {
            ScoreMix::Embeddings => 0,
            ScoreMix::Probabilities => 1,
        },
        temperature,
        _pad: [0; 3],
    };
    let bindings =
        [patches.binding(), weights.binding(), text_normal.binding(), text_abnormal.binding(), out.binding()];
    let grid = gpu.grid(n as u64, OP)?;
    gpu.dispatch(OP, &[], &bindings, bytemuck::bytes_of(&params), grid)?;
    Ok(out)
}
