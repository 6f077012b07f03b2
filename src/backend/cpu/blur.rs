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
///
/// Each output sums `weight[t] · input[reflect(i + t − r)]` for t = 0, 1, … in that order, as
/// the shader does; the loops run over whole rows so the compiler vectorises them, without
/// changing any element's order of additions (the results are bit-identical to a per-element loop).
pub fn blur_axis(x: &[f32], c: usize, h: usize, w: usize, weights: &[f32], axis: usize, out: &mut [f32]) {
    let r = (weights.len() / 2) as i64;
    let mut padded = vec![0.0f32; w + 2 * r as usize];
    for ch in 0..c {
        let plane = &x[ch * h * w..(ch + 1) * h * w];
        let dst = &mut out[ch * h * w..(ch + 1) * h * w];
        for y in 0..h {
            let acc = &mut dst[y * w..(y + 1) * w];
            acc.fill(0.0);
            if axis == 0 {
                for (t, &wt) in weights.iter().enumerate() {
                    let sy = reflect(y as i64 + t as i64 - r, h);
                    for (a, &v) in acc.iter_mut().zip(&plane[sy * w..(sy + 1) * w]) {
                        *a += wt * v;
                    }
                }
            } else {
                for (i, p) in padded.iter_mut().enumerate() {
                    *p = plane[y * w + reflect(i as i64 - r, w)];
                }
                for (t, &wt) in weights.iter().enumerate() {
                    for (a, &v) in acc.iter_mut().zip(&padded[t..t + w]) {
                        *a += wt * v;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The per-element loop the row-wise one replaced: same sums, same order.
    fn per_element(x: &[f32], c: usize, h: usize, w: usize, weights: &[f32], axis: usize) -> Vec<f32> {
        let r = (weights.len() / 2) as i64;
        let mut out = vec![0.0; x.len()];
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
        out
    }

    #[test]
    fn row_wise_passes_equal_the_per_element_sums_bit_for_bit() {
        for (c, h, w, sigma) in [(1, 7, 5, 4.0), (2, 13, 29, 1.5), (1, 1, 3, 0.7), (3, 20, 9, 8.0)] {
            let x: Vec<f32> = (0..c * h * w).map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0).collect();
            let weights = gaussian_weights(sigma);
            for axis in [0, 1] {
                let mut out = vec![0.0; x.len()];
                blur_axis(&x, c, h, w, &weights, axis, &mut out);
                let want = per_element(&x, c, h, w, &weights, axis);
                assert!(
                    out.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{c}x{h}x{w} σ {sigma} axis {axis}"
                );
            }
        }
    }
}
