//! CPU twin of `shaders/softmax.wgsl`.

use super::par::for_each_row;

/// Softmax of each `cols`-wide row of `x` into `out`, max-subtracted.
pub fn softmax(x: &[f32], cols: usize, out: &mut [f32]) {
    for_each_row(out, cols, |r, y| {
        y.copy_from_slice(&x[r * cols..(r + 1) * cols]);
        softmax_in_place(y);
    });
}

/// Softmax of one row, in place.
pub fn softmax_in_place(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    let inv = 1.0 / sum;
    for v in row.iter_mut() {
        *v *= inv;
    }
}
