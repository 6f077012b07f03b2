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
