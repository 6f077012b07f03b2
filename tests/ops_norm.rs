//! layer_norm and l2_normalize: PyTorch fixtures, known values, GPU against the CPU twin, errors.

mod common;

use common::{assert_close, assert_close32, cpu, fixture, fixture32, fixture_scalar, gpu, random, read, Tol};
use proptest::prelude::*;
use tokenclip::backend::{Backend, BackendError};

fn layer_norm_matches_pytorch<B: Backend>(be: &B) {
    for i in common::cases("layer_norm", "x") {
        let (x, sx) = fixture32(&format!("layer_norm_{i}.x"));
        let (g, sg) = fixture32(&format!("layer_norm_{i}.gamma"));
        let (b, sb) = fixture32(&format!("layer_norm_{i}.beta"));
        let eps = fixture_scalar(&format!("layer_norm_{i}.eps")) as f32;
        let (want, _) = fixture(&format!("layer_norm_{i}.y"));
        let y = be
            .layer_norm(&be.upload(&x, &sx).unwrap(), &be.upload(&g, &sg).unwrap(), &be.upload(&b, &sb).unwrap(), eps)
            .unwrap();
        // Case 3 has a mean of 1000 and unit spread: f32 inputs carry ~6e-5 absolute error there.
        let tol = if i == 3 { Tol { rel: 1e-4, abs: 2e-3 } } else { Tol::NORM };
        assert_close(&format!("F.layer_norm case {i} {sx:?}"), &read(be, &y), &want, tol);
    }
}
on_both_backends!(layer_norm_matches_pytorch, super::layer_norm_matches_pytorch);

fn layer_norm_known_values<B: Backend>(be: &B) {
    // Row [1, 2, 3]: mean 2, biased variance 2/3, so (x − 2)/√(2/3) = ∓1.2247449, 0.
    let x = be.upload(&[1.0, 2.0, 3.0], &[1, 3]).unwrap();
    let g = be.upload(&[1.0, 2.0, 1.0], &[3]).unwrap();
    let b = be.upload(&[0.0, 0.0, 0.5], &[3]).unwrap();
    let got = read(be, &be.layer_norm(&x, &g, &b, 0.0).unwrap());
    assert_close("layer_norm [1,2,3]", &got, &[-1.224_744_871_391_589, 0.0, 1.724_744_871_391_589], Tol::NORM);
    let got = read(be, &be.l2_normalize(&be.upload(&[3.0, 4.0, 0.0, 0.0], &[2, 2]).unwrap()).unwrap());
    assert_close("l2_normalize [[3,4],[0,0]]", &got, &[0.6, 0.8, 0.0, 0.0], Tol::NORM);
}
on_both_backends!(layer_norm_known_values, super::layer_norm_known_values);

fn l2_normalize_matches_pytorch<B: Backend>(be: &B) {
    for i in common::cases("l2_normalize", "x") {
        let (x, sx) = fixture32(&format!("l2_normalize_{i}.x"));
        let (want, _) = fixture(&format!("l2_normalize_{i}.y"));
        let got = read(be, &be.l2_normalize(&be.upload(&x, &sx).unwrap()).unwrap());
        assert_close(&format!("F.normalize case {i}"), &got, &want, Tol::NORM);
    }
}
on_both_backends!(l2_normalize_matches_pytorch, super::l2_normalize_matches_pytorch);

fn run<B: Backend>(be: &B, rows: usize, cols: usize, offset: f32, f16: bool, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let x = be.upload(&random(rows * cols, seed, offset - 2.0, offset + 2.0), &[rows, cols]).unwrap();
    let (gv, bv) = (random(cols, seed + 1, 0.5, 1.5), random(cols, seed + 2, -0.5, 0.5));
    let (g, b) = if f16 {
        let h = |v: &[f32]| v.iter().map(|&x| half::f16::from_f32(x)).collect::<Vec<_>>();
        (be.upload_f16(&h(&gv), &[cols]).unwrap(), be.upload_f16(&h(&bv), &[cols]).unwrap())
    } else {
        (be.upload(&gv, &[cols]).unwrap(), be.upload(&bv, &[cols]).unwrap())
    };
    (read(be, &be.layer_norm(&x, &g, &b, 1e-5).unwrap()), read(be, &be.l2_normalize(&x).unwrap()))
}

fn compare(rows: usize, cols: usize, offset: f32, f16: bool, seed: u64) {
    let Some(g) = gpu("layer_norm_gpu_matches_cpu") else { return };
    let (gl, g2) = run(g, rows, cols, offset, f16, seed);
    let (cl, c2) = run(&cpu(), rows, cols, offset, f16, seed);
    let what = format!("rows {rows} cols {cols} offset {offset} f16 {f16}");
    // Inputs near 1000 carry ~6e-5 absolute rounding and the two sides sum the mean in different
    // orders, so x − mean agrees only to ~3e-4 there; the centred form keeps it at that.
    let tol = if offset.abs() > 100.0 { Tol { rel: 1e-4, abs: 2e-3 } } else { Tol::NORM };
    assert_close32(&format!("layer_norm {what}"), &gl, &cl, tol);
    assert_close32(&format!("l2_normalize {what}"), &g2, &c2, Tol::NORM);
}

#[test]
fn layer_norm_gpu_matches_cpu_edge_shapes() {
    for (rows, cols) in [
        (1, 1),
        (1, 2),
        (3, 7),
        (2, 63),
        (2, 64),
        (2, 65),
        (5, 255),
        (5, 256),
        (5, 257),
        (4, 768),
        (2, 1025),
        (3, 1024),
    ] {
        compare(rows, cols, 0.0, false, (rows * 1000 + cols) as u64);
    }
    compare(3, 1024, 1e3, false, 9);
    compare(3, 769, 0.0, true, 10);
}

#[test]
fn layer_norm_gpu_folds_rows_past_65535_workgroups() {
    compare(65_536 + 3, 1, 0.0, false, 11);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]
    #[test]
    fn layer_norm_gpu_matches_cpu_random_shapes(rows in 1usize..40, cols in 1usize..1100, f16 in any::<bool>(), seed in any::<u64>()) {
        compare(rows, cols, 0.0, f16, seed);
    }
}

fn layer_norm_rejects_gamma_len_mismatch<B: Backend>(be: &B) {
    let x = be.upload(&[0.0; 6], &[2, 3]).unwrap();
    let g = be.upload(&[1.0; 4], &[4]).unwrap();
    let b = be.upload(&[0.0; 3], &[3]).unwrap();
    let err = be.layer_norm(&x, &g, &b, 1e-5).unwrap_err();
    assert!(matches!(err, BackendError::ShapeMismatch { op: "layer_norm", operand: "gamma", .. }), "{err}");
    let g = be.upload(&[1.0; 3], &[3]).unwrap();
    let err = be.layer_norm(&x, &g, &b, f32::NAN).unwrap_err();
    assert!(matches!(err, BackendError::InvalidArgument { .. }), "{err}");
}
on_both_backends!(layer_norm_rejects_gamma_len_mismatch, super::layer_norm_rejects_gamma_len_mismatch);
