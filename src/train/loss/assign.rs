//! The constant part of the loss: each token's subspace weights (METHOD.md B3–B5), solved in f32
//! with the inference CPU twins so that training and detection assign tokens identically.

use rayon::prelude::*;

use crate::backend::cpu::transport::{sinkhorn, top_k_renorm};
use crate::backend::SinkhornParams;
use crate::clip::config::{Assign, DetectionConfig};
use crate::tokenclip::prompts::normalize;
use crate::Error;

use super::scoring::dot;
use super::{check, TrainImage};

/// Top-K renormalised transport weights per image and feature layer, `[N, M]` each; empty for
/// images without a mask (they have no token terms).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenWeights {
    /// Subspaces M.
    pub subspaces: usize,
    /// `weights[image][layer]`: `[N, M]`, each row summing to 1.
    pub weights: Vec<Vec<Vec<f32>>>,
}

/// Solves the plans of every masked image and layer: axes `s^m = normalize(t_n^m + t_a^m)`,
/// cost `1 − P sᵀ`, Sinkhorn with uniform marginals, top-K (K clamped to M).
///
/// # Shapes
/// As [`super::loss_and_grad`].
///
/// # Errors
/// As [`super::loss_and_grad`].
pub fn token_weights(
    t_n: &[f32],
    t_a: &[f32],
    m: usize,
    d: usize,
    batch: &[TrainImage],
    det: &DetectionConfig,
) -> Result<TokenWeights, Error> {
    check::text(t_n, t_a, m, d)?;
    check::detection(det)?;
    check::batch(batch, d, None)?;
    let mut axes: Vec<f32> = t_n.iter().zip(t_a).map(|(a, b)| a + b).collect();
    axes.chunks_exact_mut(d).for_each(normalize);
    let params = SinkhornParams { eps: det.epsilon, max_iters: det.sinkhorn_iters, tol: det.sinkhorn_tol };
    let k = det.top_k.min(m);
    let weights = batch
        .par_iter()
        .map(|img| match img.mask {
            None => Vec::new(),
            Some(_) => img.patches.par_iter().map(|p| layer_weights(p, &axes, m, d, params, k, det.assign)).collect(),
        })
        .collect();
    Ok(TokenWeights { subspaces: m, weights })
}

/// One layer's weights as detection computes them (`tokenclip::transport::assign`).
fn layer_weights(
    patches: &[f32],
    axes: &[f32],
    m: usize,
    d: usize,
    params: SinkhornParams,
    k: usize,
    assign: Assign,
) -> Vec<f32> {
    let n = patches.len() / d;
    match assign {
        Assign::Ot => {}
        Assign::Greedy => {
            let similarity: Vec<f32> =
                patches.chunks_exact(d).flat_map(|p| axes.chunks_exact(d).map(|s| dot(p, s))).collect();
            let mut w = vec![0.0f32; n * m];
            top_k_renorm(&similarity, m, 1, &mut w);
            return w;
        }
        Assign::Uniform => return vec![1.0 / m as f32; n * m],
    }
    let mut cost = vec![0.0f32; n * m];
    for (p, row) in patches.chunks_exact(d).zip(cost.chunks_exact_mut(m)) {
        for (c, s) in row.iter_mut().zip(axes.chunks_exact(d)) {
            *c = 1.0 - dot(p, s);
        }
    }
    let mut plan = vec![0.0f32; n * m];
    sinkhorn(&cost, n, m, params, &mut plan);
    let mut w = vec![0.0f32; n * m];
    top_k_renorm(&plan, m, k, &mut w);
    w
}
