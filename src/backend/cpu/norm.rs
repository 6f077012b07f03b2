//! CPU twins of `shaders/norm.wgsl`: layer norm and row L2 normalisation.

use super::par::for_each_row;
use super::simd::{self, dispatch};

/// PyTorch's `F.normalize` floor on the norm.
pub const L2_NORM_EPS: f32 = 1e-12;

/// Layer norm of each `cols`-wide row of `x` into `out`: centred two-pass biased variance in
/// f32, then `(x − mean) / √(var + eps) · gamma + beta`.
pub fn layer_norm(x: &[f32], gamma: &[f32], beta: &[f32], eps: f32, out: &mut [f32]) {
    let cols = gamma.len();
    for_each_row(out, cols, |r, y| layer_norm_row(&x[r * cols..(r + 1) * cols], gamma, beta, eps, y));
}

dispatch! {
    /// Layer norm of one row `x` into `y`.
    fn layer_norm_row(x: &[f32], gamma: &[f32], beta: &[f32], eps: f32, y: &mut [f32]) = layer_norm_row_body;
}

#[inline(always)]
fn layer_norm_row_body(x: &[f32], gamma: &[f32], beta: &[f32], eps: f32, y: &mut [f32]) {
    let n = x.len() as f32;
    let mean = simd::sum(x) / n;
    let var = simd::sum_map(x, |v| (v - mean) * (v - mean)) / n;
    let inv = 1.0 / (var + eps).sqrt();
    for (((o, &v), &g), &b) in y.iter_mut().zip(x).zip(gamma).zip(beta) {
        *o = (v - mean) * inv * g + b;
    }
}

/// Divides each `cols`-wide row of `x` by `max(‖row‖₂, 1e-12)`.
pub fn l2_normalize(x: &[f32], cols: usize, out: &mut [f32]) {
    for_each_row(out, cols, |r, y| {
        let row = &x[r * cols..(r + 1) * cols];
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt().max(L2_NORM_EPS);
        for (o, v) in y.iter_mut().zip(row) {
            *o = v / norm;
        }
    });
}
