//! Row-wise pieces of the text tower with their exact backward passes (input gradients only:
//! CLIP is frozen): `nn.Linear` through `gemm`, LayerNorm, QuickGELU and the final L2
//! normalisation. Shapes are row-major `[rows, cols]`; callers validated them at the edge.

use rayon::prelude::*;

use crate::backend::cpu::norm::L2_NORM_EPS;
use crate::train::real::Real;

use super::weights::Linear;

/// QuickGELU's α, in f64 so that the f64 checks use PyTorch's constant exactly (in f32 it is
/// `backend::cpu::elementwise::QUICK_GELU_ALPHA`).
pub const QUICK_GELU_ALPHA: f64 = 1.702;
/// LayerNorm's ε, PyTorch's default, in f64 for the same reason (`clip::config::LAYER_NORM_EPS`).
pub const LAYER_NORM_EPS: f64 = 1e-5;

/// Multiply-adds below which a GEMM stays on one thread.
const PARALLEL_WORK: usize = 1 << 16;
/// Elements below which an elementwise pass stays on one thread.
const PARALLEL_ELEMENTS: usize = 1 << 15;

/// How `b` is laid out in a product `a · b` of inner size `k` and `n` output columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rhs {
    /// `b` is `[k, n]` row-major (`a · b`).
    Plain,
    /// `b` is `[n, k]` row-major, used as its transpose (`a · bᵀ`: `nn.Linear`'s weight).
    Transposed,
}

/// `c = a · b` (or `c += a · b` when `accumulate`), `a` `[m, k]`, `c` `[m, n]`, `b` as `rhs` says.
///
/// # Panics
/// When a slice is shorter than its shape says (an internal invariant: the GEMM reads raw
/// pointers, so this is checked even in release builds).
#[allow(clippy::too_many_arguments)] // a GEMM: operands, their shapes and the accumulate flag
pub fn matmul<T: Real>(a: &[T], b: &[T], rhs: Rhs, m: usize, k: usize, n: usize, c: &mut [T], accumulate: bool) {
    assert!(
        a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
        "matmul operands shorter than [{m},{k}]·[{k},{n}]"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c[..m * n].fill(T::ZERO);
        }
        return;
    }
    let (b_rs, b_cs) = match rhs {
        Rhs::Plain => (n as isize, 1),
        Rhs::Transposed => (1, k as isize),
    };
    let par = if m * n * k >= PARALLEL_WORK { gemm::Parallelism::Rayon(0) } else { gemm::Parallelism::None };
    // SAFETY: a holds m×k elements with row stride k, b k×n with the strides above, c m×n with
    // row stride n (asserted above); c is a unique borrow, so it aliases neither input. T is f32
    // or f64, the only `Real` types, both of which gemm implements.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            b_cs,
            b_rs,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            par,
        );
    }
}

/// Adds `bias` to every `bias.len()`-wide row of `y`.
pub fn add_bias<T: Real>(y: &mut [T], bias: &[T]) {
    if bias.is_empty() {
        return;
    }
    for row in y.chunks_exact_mut(bias.len()) {
        row.iter_mut().zip(bias).for_each(|(o, &b)| *o += b);
    }
}

/// `nn.Linear` on stacked rows: `y = x · Wᵀ + b` (`y += …` when `accumulate`, a residual).
///
/// # Shapes
/// `x`: `[rows, in]`; `y`: `[rows, out]`.
pub fn linear<T: Real>(l: &Linear<T>, x: &[T], y: &mut [T], accumulate: bool) {
    let out = l.bias.len();
    let inp = l.weight.len() / out.max(1);
    matmul(x, &l.weight, Rhs::Transposed, x.len() / inp.max(1), inp, out, y, accumulate);
    add_bias(y, &l.bias);
}

/// The input gradient of [`linear`]: `dx = dy · W` (`dx += …` when `accumulate`).
///
/// # Shapes
/// `dy`: `[rows, out]`; `dx`: `[rows, in]`.
pub fn linear_backward<T: Real>(l: &Linear<T>, dy: &[T], dx: &mut [T], accumulate: bool) {
    let out = l.bias.len();
    let inp = l.weight.len() / out.max(1);
    matmul(dy, &l.weight, Rhs::Plain, dy.len() / out.max(1), out, inp, dx, accumulate);
}

/// Runs `f(row_index, row)` over the `cols`-wide rows of `out`, in parallel when it is large.
pub fn for_rows<T: Real>(out: &mut [T], cols: usize, f: impl Fn(usize, &mut [T]) + Sync + Send) {
    if cols == 0 {
        return;
    }
    if out.len() >= PARALLEL_ELEMENTS {
        let min_rows = (PARALLEL_ELEMENTS / 4 / cols).max(1);
        out.par_chunks_mut(cols).with_min_len(min_rows).enumerate().for_each(|(i, r)| f(i, r));
    } else {
        out.chunks_mut(cols).enumerate().for_each(|(i, r)| f(i, r));
    }
}

/// What LayerNorm's backward needs: the normalised rows and each row's 1/σ.
#[derive(Debug, Clone, Default)]
pub struct NormTape<T> {
    /// `(x − mean) / σ`, `[rows, cols]`.
    pub xhat: Vec<T>,
    /// `1 / √(var + eps)`, `[rows]`.
    pub rstd: Vec<T>,
}

/// LayerNorm of each `cols`-wide row of `x` into `y` (centred two-pass biased variance, as the
/// CPU backend), recording the tape.
///
/// # Shapes
/// `x`, `y`: `[rows, cols]`; `gamma`, `beta`: `[cols]`.
pub fn layer_norm<T: Real>(x: &[T], gamma: &[T], beta: &[T], eps: T, y: &mut [T]) -> NormTape<T> {
    let cols = gamma.len().max(1);
    let rows = x.len() / cols;
    let mut tape = NormTape { xhat: vec![T::ZERO; x.len()], rstd: vec![T::ZERO; rows] };
    let n = T::from_usize(cols);
    let row = |r: usize, xhat: &mut [T], rstd: &mut T, out: &mut [T]| {
        let row = &x[r * cols..(r + 1) * cols];
        let mean = row.iter().copied().sum::<T>() / n;
        let var = row.iter().map(|&v| (v - mean) * (v - mean)).sum::<T>() / n;
        *rstd = T::ONE / (var + eps).sqrt();
        for ((((h, o), &v), &g), &b) in xhat.iter_mut().zip(out.iter_mut()).zip(row).zip(gamma).zip(beta) {
            *h = (v - mean) * *rstd;
            *o = *h * g + b;
        }
    };
    let (xhat, rstd) = (&mut tape.xhat, &mut tape.rstd);
    if x.len() >= PARALLEL_ELEMENTS {
        let parts = xhat.par_chunks_mut(cols).zip(rstd.par_iter_mut()).zip(y.par_chunks_mut(cols));
        parts.enumerate().for_each(|(r, ((h, s), o))| row(r, h, s, o));
    } else {
        let parts = xhat.chunks_mut(cols).zip(rstd.iter_mut()).zip(y.chunks_mut(cols));
        parts.enumerate().for_each(|(r, ((h, s), o))| row(r, h, s, o));
    }
    tape
}

/// LayerNorm's input gradient added to `dx`: with `g = dy ⊙ γ`,
/// `dx += (g − mean(g) − x̂ · mean(g ⊙ x̂)) / σ`.
///
/// # Shapes
/// `dy`, `dx`: `[rows, cols]`; `gamma`: `[cols]`.
pub fn layer_norm_backward<T: Real>(dy: &[T], tape: &NormTape<T>, gamma: &[T], dx: &mut [T]) {
    let cols = gamma.len();
    let n = T::from_usize(cols);
    for_rows(dx, cols, |r, dx| {
        let (dy, xhat) = (&dy[r * cols..(r + 1) * cols], &tape.xhat[r * cols..(r + 1) * cols]);
        let (mut mg, mut mgx) = (T::ZERO, T::ZERO);
        for ((&d, &g), &h) in dy.iter().zip(gamma).zip(xhat) {
            mg += d * g;
            mgx += d * g * h;
        }
        let (mg, mgx, inv) = (mg / n, mgx / n, tape.rstd[r]);
        for (((o, &d), &g), &h) in dx.iter_mut().zip(dy).zip(gamma).zip(xhat) {
            *o += (d * g - mg - h * mgx) * inv;
        }
    });
}

/// QuickGELU, `x · σ(1.702 x)`, of `x` into `y`.
pub fn quick_gelu<T: Real>(x: &[T], y: &mut [T]) {
    let alpha = T::from_f64(QUICK_GELU_ALPHA);
    let cols = PARALLEL_ELEMENTS / 4;
    for_rows(y, cols, |r, y| {
        for (o, &v) in y.iter_mut().zip(&x[r * cols..]) {
            *o = v / (T::ONE + (-alpha * v).exp());
        }
    });
}

/// Multiplies the gradient `g` of QuickGELU's output by its derivative at `x`, in place:
/// `d/dx [x σ(αx)] = σ(αx) (1 + αx (1 − σ(αx)))`.
pub fn quick_gelu_backward<T: Real>(x: &[T], g: &mut [T]) {
    let alpha = T::from_f64(QUICK_GELU_ALPHA);
    let cols = PARALLEL_ELEMENTS / 4;
    for_rows(g, cols, |r, g| {
        for (o, &v) in g.iter_mut().zip(&x[r * cols..]) {
            let s = T::ONE / (T::ONE + (-alpha * v).exp());
            *o *= s * (T::ONE + alpha * v * (T::ONE - s));
        }
    });
}

/// Exact GELU, `x Φ(x) = ½ x (1 + erf(x / √2))`, of `x` into `y` (erf of libm, in f64).
pub fn gelu<T: Real>(x: &[T], y: &mut [T]) {
    let cols = PARALLEL_ELEMENTS / 4;
    for_rows(y, cols, |r, y| {
        for (o, &v) in y.iter_mut().zip(&x[r * cols..]) {
            let v = v.to_f64();
            *o = T::from_f64(0.5 * v * (1.0 + libm::erf(v * std::f64::consts::FRAC_1_SQRT_2)));
        }
    });
}

/// Multiplies the gradient `g` of GELU's output by its derivative at `x`, in place:
/// `d/dx [x Φ(x)] = Φ(x) + x φ(x)`.
pub fn gelu_backward<T: Real>(x: &[T], g: &mut [T]) {
    let cols = PARALLEL_ELEMENTS / 4;
    let inv_sqrt_2pi = 0.5 * std::f64::consts::FRAC_2_SQRT_PI * std::f64::consts::FRAC_1_SQRT_2;
    for_rows(g, cols, |r, g| {
        for (o, &v) in g.iter_mut().zip(&x[r * cols..]) {
            let v = v.to_f64();
            let cdf = 0.5 * (1.0 + libm::erf(v * std::f64::consts::FRAC_1_SQRT_2));
            let pdf = inv_sqrt_2pi * (-0.5 * v * v).exp();
            *o *= T::from_f64(cdf + v * pdf);
        }
    });
}

/// Divides each `cols`-wide row of `y` by `max(‖row‖, 1e-12)` in place; returns the divisors.
pub fn l2_normalize<T: Real>(y: &mut [T], cols: usize) -> Vec<T> {
    let floor = T::from_f32(L2_NORM_EPS);
    y.chunks_exact_mut(cols.max(1))
        .map(|row| {
            let norm = row.iter().map(|&v| v * v).sum::<T>().sqrt().max(floor);
            row.iter_mut().for_each(|v| *v /= norm);
            norm
        })
        .collect()
}

/// The gradient through `t = y / ‖y‖` in place: `dy = (dt − t (t · dt)) / ‖y‖`, from the
/// normalised rows `t` and the divisors `norms` (below the floor the divisor is constant and
/// the gradient is `dt / floor`).
pub fn l2_normalize_backward<T: Real>(t: &[T], norms: &[T], cols: usize, d: &mut [T]) {
    let floor = T::from_f32(L2_NORM_EPS);
    for ((d, t), &norm) in d.chunks_exact_mut(cols.max(1)).zip(t.chunks_exact(cols.max(1))).zip(norms) {
        let dot = if norm > floor { d.iter().zip(t).map(|(&a, &b)| a * b).sum::<T>() } else { T::ZERO };
        d.iter_mut().zip(t).for_each(|(g, &v)| *g = (*g - v * dot) / norm);
    }
}

#[cfg(test)]
mod tests;
