//! CPU twin of `shaders/softmax.wgsl`.

use super::par::for_each_row;
use super::simd::{self, dispatch};

/// Softmax of each `cols`-wide row of `x` into `out`, max-subtracted.
pub fn softmax(x: &[f32], cols: usize, out: &mut [f32]) {
    for_each_row(out, cols, |r, y| {
        y.copy_from_slice(&x[r * cols..(r + 1) * cols]);
        softmax_in_place(y);
    });
}

/// The largest value of each `cols`-wide row of `x`, into `out[row]` (a row of NaNs gives
/// −∞, as the shader's `max` skips NaN on most GPUs; callers never pass NaN).
pub fn row_max(x: &[f32], cols: usize, out: &mut [f32]) {
    for_each_row(out, 1, |r, y| y[0] = max_of(&x[r * cols..(r + 1) * cols]));
}

dispatch! {
    /// The largest element of a row.
    fn max_of(row: &[f32]) -> f32 = simd::max;
}

dispatch! {
    /// Softmax of one row, in place.
    pub fn softmax_in_place(row: &mut [f32]) = softmax_row;
}

#[inline(always)]
fn softmax_row(row: &mut [f32]) {
    let max = simd::max(row);
    let inv = 1.0 / simd::map_sum(row, |v| simd::exp(v - max));
    for v in row.iter_mut() {
        *v *= inv;
    }
}
