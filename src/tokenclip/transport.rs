//! Token-to-subspace assignment by optimal transport (METHOD.md B3–B5): the cost
//! `C_im = 1 − ⟨P_i, s^m⟩`, entropic log-domain Sinkhorn with uniform marginals, and the top-K
//! mask renormalised into per-token weights. No label enters, so training and inference agree.
//! The paper's ablations replace the transport ([`Assign`]): greedy puts each token wholly on its
//! most similar subspace (the top-1 of the similarity row), uniform spreads it evenly.

use crate::backend::{BLayout, Backend, SinkhornParams};
use crate::clip::config::{Assign, DetectionConfig};
use crate::Error;

use super::subspaces::TextSpace;

/// The transport stages of one feature layer, kept for inspection and tests.
pub struct Assignment<B: Backend> {
    /// Cost `[N, M]`.
    pub cost: B::Tensor,
    /// Transport plan `[N, M]` (rows sum to 1/N, columns to 1/M); without transport (greedy,
    /// uniform) the weights themselves.
    pub plan: B::Tensor,
    /// Per-token weights `[N, M]`, each row summing to 1 (OT: the plan's top-K).
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
    let (plan, weights) = match cfg.assign {
        Assign::Ot => {
            let params = SinkhornParams { eps: cfg.epsilon, max_iters: cfg.sinkhorn_iters, tol: cfg.sinkhorn_tol };
            let plan = be.sinkhorn(&cost, params)?;
            let weights = be.top_k_renorm(&plan, cfg.top_k.min(space.subspaces))?;
            (plan, weights)
        }
        // top_k_renorm's k = 1 gives exactly 1 at the row's maximum whatever its sign.
        Assign::Greedy => {
            let w = be.top_k_renorm(&similarity, 1)?;
            (w.clone(), w)
        }
        Assign::Uniform => {
            let w = be.affine(&similarity, 0.0, 1.0 / space.subspaces as f32)?;
            (w.clone(), w)
        }
    };
    Ok(Assignment { cost, plan, weights })
}
