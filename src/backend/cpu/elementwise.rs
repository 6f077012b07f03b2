//! CPU twins of `shaders/elementwise.wgsl`.

use super::simd::{self, dispatch};

/// QuickGELU's sigmoid slope (CLIP's activation, `x · sigmoid(1.702 x)`).
pub const QUICK_GELU_ALPHA: f32 = 1.702;

dispatch! {
    /// `out = x · sigmoid(1.702 x)`.
    pub fn quick_gelu(x: &[f32], out: &mut [f32]) = quick_gelu_body;
}

#[inline(always)]
fn quick_gelu_body(x: &[f32], out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = v / (1.0 + simd::exp(-QUICK_GELU_ALPHA * v));
    }
}

/// Abramowitz & Stegun 7.1.26: `erf(x) ≈ 1 − (a₁t + … + a₅t⁵) e^{−x²}`, `t = 1 / (1 + p x)`,
/// for x ≥ 0 (|error| ≤ 1.5e-7); PyTorch's vectorised CPU `erf` uses the same coefficients.
pub const ERF_P: f32 = 0.327_591_1;
/// The A&S 7.1.26 coefficients a₁ … a₅ (as published; f32 rounds them, as PyTorch's do).
#[allow(clippy::excessive_precision)]
pub const ERF_A: [f32; 5] = [0.254_829_592, -0.284_496_736, 1.421_413_741, -1.453_152_027, 1.061_405_429];

dispatch! {
    /// `out = ½ x (1 + erf(x / √2))`.
    pub fn gelu(x: &[f32], out: &mut [f32]) = gelu_body;
}

#[inline(always)]
fn gelu_body(x: &[f32], out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        let z = v * std::f32::consts::FRAC_1_SQRT_2;
        let a = z.abs();
        let t = 1.0 / (1.0 + ERF_P * a);
        let poly = ((((ERF_A[4] * t + ERF_A[3]) * t + ERF_A[2]) * t + ERF_A[1]) * t + ERF_A[0]) * t;
        let erf = (1.0 - poly * simd::exp(-a * a)).copysign(z);
        *o = 0.5 * v * (1.0 + erf);
    }
}

/// `out = a + b`.
pub fn add(a: &[f32], b: &[f32], out: &mut [f32]) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = x + y;
    }
}

/// `out = x · factor + shift`.
pub fn affine(x: &[f32], factor: f32, shift: f32, out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = v * factor + shift;
    }
}

/// `out = x · factor`.
pub fn scale(x: &[f32], factor: f32, out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = v * factor;
    }
}
