//! Map post-processing: bilinear resize against PyTorch and the Gaussian filter against SciPy
//! (both backends), GPU against the CPU twin, and errors.

mod common;

use common::{assert_close, assert_close32, cpu, fixture, fixture32, fixture_scalar, gpu, random, read, Tol};
use proptest::prelude::*;
use tokenclip::backend::{Backend, BackendError};

fn resize_matches_pytorch<B: Backend>(be: &B) {
    for i in common::cases("resize", "x") {
        let (x, sx) = fixture32(&format!("resize_{i}.x"));
        let (want, sy) = fixture(&format!("resize_{i}.y"));
        let (want32, _) = fixture32(&format!("resize_{i}.y32"));
        let got = read(be, &be.resize_bilinear(&be.upload(&x, &sx).unwrap(), sy[1], sy[2]).unwrap());
        assert_close32(
            &format!("F.interpolate bilinear case {i} {sx:?} -> {sy:?} (PyTorch's own f32)"),
            &got,
            &want32,
            Tol::ELEMENTWISE,
        );
        // PyTorch computes source coordinates in f32 too (scale = in/out as f32), which moves
        // the weights by up to ~1e-6 from the float64 answer; we match PyTorch, not float64.
        assert_close(&format!("F.interpolate bilinear case {i} (float64)"), &got, &want, Tol { rel: 1e-5, abs: 1e-5 });
    }
}
on_both_backends!(resize_matches_pytorch, super::resize_matches_pytorch);

fn blur_matches_scipy<B: Backend>(be: &B) {
    for i in common::cases("blur", "x") {
        let (x, sx) = fixture32(&format!("blur_{i}.x"));
        let sigma = fixture_scalar(&format!("blur_{i}.sigma")) as f32;
        let (want, _) = fixture(&format!("blur_{i}.y"));
        let got = read(be, &be.gaussian_blur(&be.upload(&x, &sx).unwrap(), sigma).unwrap());
        // SciPy accumulates in f64; both passes here accumulate up to 2·⌊4σ+½⌋+1 f32 products.
        assert_close(
            &format!("scipy gaussian_filter case {i} {sx:?} sigma {sigma}"),
            &got,
            &want,
            Tol { rel: 1e-5, abs: 1e-6 },
        );
    }
}
on_both_backends!(blur_matches_scipy, super::blur_matches_scipy);

fn compare(c: usize, h: usize, w: usize, oh: usize, ow: usize, sigma: f32, seed: u64) {
    let Some(g) = gpu("maps_gpu_matches_cpu") else { return };
    let x = random(c * h * w, seed, 0.0, 1.0);
    let cb = cpu();
    let what = format!("[{c}, {h}, {w}] -> {oh}x{ow}, sigma {sigma}");
    let got = read(g, &g.resize_bilinear(&g.upload(&x, &[c, h, w]).unwrap(), oh, ow).unwrap());
    let want = read(&cb, &cb.resize_bilinear(&cb.upload(&x, &[c, h, w]).unwrap(), oh, ow).unwrap());
    assert_close32(&format!("resize {what}"), &got, &want, Tol::ELEMENTWISE);
    let got = read(g, &g.gaussian_blur(&g.upload(&x, &[c, h, w]).unwrap(), sigma).unwrap());
    let want = read(&cb, &cb.gaussian_blur(&cb.upload(&x, &[c, h, w]).unwrap(), sigma).unwrap());
    assert_close32(&format!("blur {what}"), &got, &want, Tol::ELEMENTWISE);
}

#[test]
fn maps_gpu_matches_cpu_edge_shapes() {
    for (c, h, w, oh, ow, s) in [
        (1, 1, 1, 1, 1, 4.0),
        (1, 1, 1, 5, 3, 1.0),
        (2, 37, 37, 518, 518, 4.0),
        (1, 3, 300, 7, 1, 4.0),
        (3, 16, 9, 8, 18, 0.3),
        (1, 257, 2, 255, 3, 2.0),
    ] {
        compare(c, h, w, oh, ow, s, (h * w + oh) as u64);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]
    #[test]
    fn maps_gpu_matches_cpu_random_shapes(c in 1usize..3, h in 1usize..60, w in 1usize..60, oh in 1usize..120, ow in 1usize..120, sigma in 0.2f32..6.0, seed in any::<u64>()) {
        compare(c, h, w, oh, ow, sigma, seed);
    }
}

fn maps_reject_bad_arguments<B: Backend>(be: &B) {
    let x = be.upload(&[0.0; 4], &[1, 2, 2]).unwrap();
    assert!(matches!(
        be.resize_bilinear(&x, 0, 3).unwrap_err(),
        BackendError::InvalidArgument { op: "resize_bilinear", .. }
    ));
    assert!(matches!(
        be.gaussian_blur(&x, -1.0).unwrap_err(),
        BackendError::InvalidArgument { op: "gaussian_blur", .. }
    ));
    assert!(matches!(
        be.gaussian_blur(&x, 1000.0).unwrap_err(),
        BackendError::LimitExceeded { op: "gaussian_blur", .. }
    ));
    let flat = be.upload(&[0.0; 4], &[4]).unwrap();
    assert!(matches!(
        be.gaussian_blur(&flat, 1.0).unwrap_err(),
        BackendError::ShapeMismatch { op: "gaussian_blur", .. }
    ));
}
on_both_backends!(maps_reject_bad_arguments, super::maps_reject_bad_arguments);
