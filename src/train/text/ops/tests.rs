//! Finite-difference checks of each row-wise piece (f64) and the GEMM against a naive product.

use super::super::gradcheck::{check, dot, randn};
use super::*;
use crate::train::rng::Rng;

fn naive(a: &[f64], b: &[f64], rhs: Rhs, m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for j in 0..n {
            c[i * n + j] = (0..k)
                .map(|p| {
                    a[i * k + p]
                        * match rhs {
                            Rhs::Plain => b[p * n + j],
                            Rhs::Transposed => b[j * k + p],
                        }
                })
                .sum();
        }
    }
    c
}

#[test]
fn matmul_matches_naive_in_both_layouts_and_accumulates() {
    let mut rng = Rng::new(1);
    for (m, k, n) in [(1, 1, 1), (5, 7, 3), (33, 65, 17), (64, 64, 64)] {
        let a = randn(&mut rng, m * k, 1.0);
        let b = randn(&mut rng, k * n, 1.0);
        for rhs in [Rhs::Plain, Rhs::Transposed] {
            let want = naive(&a, &b, rhs, m, k, n);
            let mut c = vec![7.0; m * n];
            matmul(&a, &b, rhs, m, k, n, &mut c, false);
            let err = c.iter().zip(&want).fold(0.0f64, |e, (x, y)| e.max((x - y).abs()));
            assert!(err < 1e-12, "{m}x{k}x{n} {rhs:?}: {err:e}");
            matmul(&a, &b, rhs, m, k, n, &mut c, true);
            let err = c.iter().zip(&want).fold(0.0f64, |e, (x, y)| e.max((x - 2.0 * y).abs()));
            assert!(err < 1e-12, "{m}x{k}x{n} {rhs:?} accumulate: {err:e}");
        }
    }
}

#[test]
fn linear_input_gradient_matches_finite_differences() {
    let mut rng = Rng::new(2);
    let (rows, inp, out) = (5, 7, 3);
    let l = Linear { weight: randn(&mut rng, out * inp, 1.0), bias: randn(&mut rng, out, 1.0) };
    let x = randn(&mut rng, rows * inp, 1.0);
    let c = randn(&mut rng, rows * out, 1.0);
    let f = |x: &[f64]| {
        let mut y = vec![0.0; rows * out];
        linear(&l, x, &mut y, false);
        dot(&c, &y)
    };
    let mut g = vec![0.0; rows * inp];
    linear_backward(&l, &c, &mut g, false);
    let err = check("linear", &x, &g, f);
    eprintln!("linear input gradient: directional rel error {err:e}");
}

#[test]
fn layer_norm_gradient_matches_finite_differences() {
    let mut rng = Rng::new(3);
    let (rows, cols) = (4, 9);
    // Rows offset by 3 so that centring matters.
    let x: Vec<f64> = randn(&mut rng, rows * cols, 1.0).into_iter().map(|v| v + 3.0).collect();
    let gamma: Vec<f64> = randn(&mut rng, cols, 0.3).into_iter().map(|v| v + 1.0).collect();
    let beta = randn(&mut rng, cols, 0.3);
    let c = randn(&mut rng, rows * cols, 1.0);
    let f = |x: &[f64]| {
        let mut y = vec![0.0; rows * cols];
        layer_norm(x, &gamma, &beta, 1e-5, &mut y);
        dot(&c, &y)
    };
    let mut y = vec![0.0; rows * cols];
    let tape = layer_norm(&x, &gamma, &beta, 1e-5, &mut y);
    let mut g = vec![0.5; rows * cols];
    layer_norm_backward(&c, &tape, &gamma, &mut g);
    g.iter_mut().for_each(|v| *v -= 0.5); // it accumulates
    let err = check("layer_norm", &x, &g, f);
    eprintln!("layer norm: directional rel error {err:e}");
}

#[test]
fn constants_round_to_the_inference_constants() {
    assert_eq!(QUICK_GELU_ALPHA as f32, crate::backend::cpu::elementwise::QUICK_GELU_ALPHA);
    assert_eq!(LAYER_NORM_EPS as f32, crate::clip::config::LAYER_NORM_EPS);
}

#[test]
fn layer_norm_rows_have_zero_mean_unit_variance() {
    let x: Vec<f64> = (0..12).map(|i| 1e3 + i as f64).collect();
    let mut y = vec![0.0; 12];
    layer_norm(&x, &[1.0; 6], &[0.0; 6], 0.0, &mut y);
    for row in y.chunks(6) {
        let mean = row.iter().sum::<f64>() / 6.0;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / 6.0;
        assert!(mean.abs() < 1e-12 && (var - 1.0).abs() < 1e-12, "mean {mean}, var {var}");
    }
}

#[test]
fn quick_gelu_gradient_matches_finite_differences() {
    let mut rng = Rng::new(4);
    let x = randn(&mut rng, 40, 3.0);
    let c = randn(&mut rng, 40, 1.0);
    let f = |x: &[f64]| {
        let mut y = vec![0.0; x.len()];
        quick_gelu(x, &mut y);
        dot(&c, &y)
    };
    let mut g = c.clone();
    quick_gelu_backward(&x, &mut g);
    let err = check("quick_gelu", &x, &g, f);
    eprintln!("QuickGELU: directional rel error {err:e}");
    let mut y = vec![0.0; 1];
    quick_gelu(&[1.0], &mut y);
    assert!((y[0] - 1.0 / (1.0 + (-1.702f64).exp())).abs() < 1e-6);
}

#[test]
fn gelu_gradient_matches_finite_differences() {
    let mut rng = Rng::new(14);
    let x = randn(&mut rng, 40, 3.0);
    let c = randn(&mut rng, 40, 1.0);
    let f = |x: &[f64]| {
        let mut y = vec![0.0; x.len()];
        gelu(x, &mut y);
        dot(&c, &y)
    };
    let mut g = c.clone();
    gelu_backward(&x, &mut g);
    let err = check("gelu", &x, &g, f);
    eprintln!("GELU: directional rel error {err:e}");
    // Φ(1) = 0.841344746068543 (normal CDF), so GELU(1) = 0.841344746068543.
    let mut y = vec![0.0; 2];
    gelu(&[1.0, -1.0], &mut y);
    assert!((y[0] - 0.841_344_746_068_543).abs() < 1e-14 && (y[1] + 0.158_655_253_931_457).abs() < 1e-14, "{y:?}");
}

#[test]
fn l2_normalize_gradient_matches_finite_differences() {
    let mut rng = Rng::new(5);
    let (rows, cols) = (3, 8);
    let y = randn(&mut rng, rows * cols, 2.0);
    let c = randn(&mut rng, rows * cols, 1.0);
    let f = |y: &[f64]| {
        let mut t = y.to_vec();
        l2_normalize(&mut t, cols);
        dot(&c, &t)
    };
    let mut t = y.clone();
    let norms = l2_normalize(&mut t, cols);
    let mut g = c.clone();
    l2_normalize_backward(&t, &norms, cols, &mut g);
    let err = check("l2_normalize", &y, &g, f);
    eprintln!("L2 normalise: directional rel error {err:e}");
}
