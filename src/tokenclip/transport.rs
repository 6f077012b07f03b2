//! Token-to-subspace assignment by optimal transport (METHOD.md B3–B5): the cost
//! `C_im = 1 − ⟨P_i, s^m⟩`, entropic log-domain Sinkhorn with uniform marginals, and the top-K
//! mask renormalised into per-token weights. No label enters, so training and inference agree.

use crate::backend::{BLayout, Backend, SinkhornParams};
use crate::clip::config::DetectionConfig;
use crate::Error;

use super::subspaces::TextSpace;

/// The transport stages of one feature layer, kept for inspection and tests.
pub struct Assignment<B: Backend> {
    /// Cost `[N, M]`.
    pub cost: B::Tensor,
    /// Transport plan `[N, M]` (rows sum to 1/N, columns to 1/M).
    pub plan: B::Tensor,
    /// Top-K weights `[N, M]`, each row summing to 1.
    pub weights: B::Tensor,
}

/// Assigns the tokens `patches` (`[N, D]`, normalised) to the subspaces of `space`.
pub fn assign<B: Backend>(
    be: &B,
    patches: &B::Tensor,
    space: &TextSpace<B>,
    cfg: &DetectionConfig,
) -> Result<Assignment<B>, Error> {
    let similarity = be.matmul(patches, &space.axes, None, BLayout::Transposed)?;
    let cost = be.affine(&similarity, -1.0, 1.0)?;
    let params = SinkhornParams { eps: cfg.epsilon, max_iters: cfg.sinkhorn_iters, tol: cfg.sinkhorn_tol };
    let plan = be.sinkhorn(&cost, params)?;
    let weights = be.top_k_renorm(&plan, cfg.top_k.min(space.subspaces))?;
    Ok(Assignment { cost, plan, weights })
}
