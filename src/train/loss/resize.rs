//! Bilinear upsampling of a g×g grid to S×S (PyTorch `interpolate(mode='bilinear',
//! align_corners=False)`) in any [`Real`], and its adjoint (the backward pass). The forward does
//! the same float operations as the inference twin `backend::cpu::resize::resize_bilinear`
//! (a horizontal lerp of the two source rows, then a vertical lerp); PyTorch computes the
//! coordinates in the tensor's own precision, so f64 matches PyTorch's f64 too.

use crate::train::real::Real;

/// Lower and upper source index and the upper weight λ of one output index.
pub(super) type Tap<T> = (usize, usize, T);

/// The taps of every output index for resizing `in_size` to `out_size` (PyTorch's
/// `area_pixel_compute_source_index` rule).
pub(super) fn taps<T: Real>(in_size: usize, out_size: usize) -> Vec<Tap<T>> {
    let scale = T::from_usize(in_size) / T::from_usize(out_size);
    let half = T::from_f64(0.5);
    (0..out_size)
        .map(|dst| {
            let real = (scale * (T::from_usize(dst) + half) - half).max(T::ZERO);
            let i0 = (real.to_f64() as usize).min(in_size - 1);
            let i1 = if i0 + 1 < in_size { i0 + 1 } else { i0 };
            let lambda = (real - T::from_usize(i0)).max(T::ZERO).min(T::ONE);
            (i0, i1, lambda)
        })
        .collect()
}

/// `out` (`[S, S]`) = bilinear upsampling of `x` (`[g, g]`); `rows` is `[g, S]` scratch.
pub(super) fn upsample<T: Real>(x: &[T], g: usize, taps: &[Tap<T>], rows: &mut [T], out: &mut [T]) {
    let s = taps.len();
    for (src, row) in x.chunks_exact(g).zip(rows.chunks_exact_mut(s)) {
        for (o, &(x0, x1, lx)) in row.iter_mut().zip(taps) {
            *o = (T::ONE - lx) * src[x0] + lx * src[x1];
        }
    }
    for (orow, &(y0, y1, ly)) in out.chunks_exact_mut(s).zip(taps) {
        let (top, bottom) = (&rows[y0 * s..(y0 + 1) * s], &rows[y1 * s..(y1 + 1) * s]);
        for ((o, &t), &b) in orow.iter_mut().zip(top).zip(bottom) {
            *o = (T::ONE - ly) * t + ly * b;
        }
    }
}

/// The adjoint of [`upsample`]: `gx` (`[g, g]`) = Uᵀ `gout` (`[S, S]`); `rows` is `[g, S]` scratch.
pub(super) fn upsample_adjoint<T: Real>(gout: &[T], g: usize, taps: &[Tap<T>], rows: &mut [T], gx: &mut [T]) {
    let s = taps.len();
    rows.fill(T::ZERO);
    for (grow, &(y0, y1, ly)) in gout.chunks_exact(s).zip(taps) {
        let w0 = T::ONE - ly;
        for (c, &v) in grow.iter().enumerate() {
            rows[y0 * s + c] += w0 * v;
            rows[y1 * s + c] += ly * v;
        }
    }
    gx.fill(T::ZERO);
    for (row, dst) in rows.chunks_exact(s).zip(gx.chunks_exact_mut(g)) {
        for (&v, &(x0, x1, lx)) in row.iter().zip(taps) {
            dst[x0] += (T::ONE - lx) * v;
            dst[x1] += lx * v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::resize::resize_bilinear;

    fn values(n: usize, seed: u64) -> Vec<f64> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5
            })
            .collect()
    }

    #[test]
    fn upsample_f32_equals_the_inference_twin_bit_for_bit() {
        for (g, s) in [(1, 5), (3, 7), (4, 8), (5, 37), (37, 518)] {
            let x: Vec<f32> = values(g * g, 3).iter().map(|&v| v as f32).collect();
            let mut want = vec![0.0; s * s];
            resize_bilinear(&x, 1, g, g, s, s, &mut want);
            let (mut rows, mut got) = (vec![0.0f32; g * s], vec![0.0f32; s * s]);
            upsample(&x, g, &taps(g, s), &mut rows, &mut got);
            assert_eq!(got, want, "g = {g}, S = {s}");
        }
    }

    #[test]
    fn upsample_adjoint_is_the_transpose() {
        // ⟨U x, y⟩ = ⟨x, Uᵀ y⟩ for random x, y.
        for (g, s) in [(1, 4), (3, 7), (4, 9), (6, 6), (5, 3)] {
            let (x, y) = (values(g * g, 1), values(s * s, 2));
            let t = taps::<f64>(g, s);
            let (mut rows, mut ux, mut uty) = (vec![0.0; g * s], vec![0.0; s * s], vec![0.0; g * g]);
            upsample(&x, g, &t, &mut rows, &mut ux);
            upsample_adjoint(&y, g, &t, &mut rows, &mut uty);
            let lhs: f64 = ux.iter().zip(&y).map(|(a, b)| a * b).sum();
            let rhs: f64 = x.iter().zip(&uty).map(|(a, b)| a * b).sum();
            assert!((lhs - rhs).abs() <= 1e-12 * (1.0 + lhs.abs()), "g = {g}, S = {s}: {lhs} vs {rhs}");
        }
    }
}
