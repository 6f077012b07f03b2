//! CPU twin of `shaders/blur.wgsl`: SciPy's `gaussian_filter` (truncate 4σ, mode `reflect`),
//! separable, axis 0 (rows) first like SciPy, accumulated in f32 in the shader's order.

use crate::backend::check::gaussian_radius;

/// The normalised 1-D kernel SciPy builds (computed in f64, then rounded to f32).
pub fn gaussian_weights(sigma: f32) -> Vec<f32> {
    let r = gaussian_radius(sigma) as i64;
    let s2 = f64::from(sigma) * f64::from(sigma);
    let phi: Vec<f64> = (-r..=r).map(|x| (-0.5 / s2 * (x * x) as f64).exp()).collect();
    let sum: f64 = phi.iter().sum();
    phi.iter().map(|v| (v / sum) as f32).collect()
}

/// SciPy's `reflect` boundary (d c b a | a b c d | d c b a) for any offset.
pub fn reflect(i: i64, n: usize) -> usize {
    let n = n as i64;
    let period = 2 * n;
    let m = i.rem_euclid(period);
    (if m >= n { period - 1 - m } else { m }) as usize
}

/// One 1-D pass along rows (`axis = 0`, between rows) or columns (`axis = 1`) of `[c, h, w]`.
pub fn blur_axis(x: &[f32], c: usize, h: usize, w: usize, weights: &[f32], axis: usize, out: &mut [f32]) {
    let r = (weights.len() / 2) as i64;
    for ch in 0..c {
        for y in 0..h {
            for xx in 0..w {
                let mut acc = 0.0f32;
                for (t, &wt) in weights.iter().enumerate() {
                    let off = t as i64 - r;
                    let (sy, sx) =
                        if axis == 0 { (reflect(y as i64 + off, h), xx) } else { (y, reflect(xx as i64 + off, w)) };
                    acc += wt * x[(ch * h + sy) * w + sx];
                }
                out[(ch * h + y) * w + xx] = acc;
            }
        }
    }
}
