//! From token weights to outputs (METHOD.md A4, B6–B7): token-wise abnormal probabilities, the
//! map (bilinear upsampling to S×S, summed over feature layers, Gaussian smoothing) and the
//! global image score.

use crate::backend::{Backend, ScoreMix};
use crate::clip::config::{DetectionConfig, Mix};
use crate::Error;

use super::subspaces::TextSpace;

fn score_mix(mix: Mix) -> ScoreMix {
    match mix {
        Mix::Embeddings => ScoreMix::Embeddings,
        Mix::Probabilities => ScoreMix::Probabilities,
    }
}

/// Each token's abnormal probability against its own textual space (`[N]`).
pub fn token_probabilities<B: Backend>(
    be: &B,
    patches: &B::Tensor,
    weights: &B::Tensor,
    space: &TextSpace<B>,
    cfg: &DetectionConfig,
) -> Result<B::Tensor, Error> {
    let mix = score_mix(cfg.mix);
    Ok(be.token_probabilities(patches, weights, &space.normal, &space.abnormal, cfg.temperature, mix)?)
}

/// The map before smoothing: each layer's probabilities on the `grid` (rows, cols), upsampled
/// bilinearly to `size × size` and summed. `(p_a + 1 − p_n)/2` of the reference is `p_a`, since
/// the two channels sum to one. Output `[1, size, size]`.
pub fn raw_map<B: Backend>(
    be: &B,
    layer_probabilities: &[B::Tensor],
    grid: (usize, usize),
    size: usize,
) -> Result<B::Tensor, Error> {
    let mut map: Option<B::Tensor> = None;
    for p in layer_probabilities {
        let up = be.resize_bilinear(&be.reshape(p, &[1, grid.0, grid.1])?, size, size)?;
        map = Some(match map {
            Some(m) => be.add(&m, &up)?,
            None => up,
        });
    }
    map.ok_or_else(|| {
        crate::BackendError::InvalidArgument { op: "anomaly_map", message: "no feature layers".into() }.into()
    })
}

/// The smoothed map (SciPy's `gaussian_filter` with σ; σ = 0 leaves it as is).
pub fn smooth<B: Backend>(be: &B, raw: &B::Tensor, sigma: f32) -> Result<B::Tensor, Error> {
    if sigma == 0.0 {
        return Ok(raw.clone());
    }
    Ok(be.gaussian_blur(raw, sigma)?)
}

/// The global score `softmax([⟨f, t̄_n⟩, ⟨f, t̄_a⟩] / τ)[abnormal]` (`[1]`).
pub fn global_score<B: Backend>(
    be: &B,
    global: &B::Tensor,
    space: &TextSpace<B>,
    cfg: &DetectionConfig,
) -> Result<B::Tensor, Error> {
    let (n, a) = (&space.mean_normal, &space.mean_abnormal);
    Ok(be.token_probabilities(global, &space.one, n, a, cfg.temperature, ScoreMix::Embeddings)?)
}
