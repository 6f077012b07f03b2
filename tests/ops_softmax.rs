//! softmax, row_max and the elementwise family: PyTorch fixtures, known values, GPU against the
//! CPU twin, errors.

mod common;

use common::{assert_close, assert_close32, cpu, fixture, fixture32, gpu, random, read, Tol};
use proptest::prelude::*;
use tokenclip::backend::{Backend, BackendError};

fn softmax_matches_pytorch<B: Backend>(be: &B) {
    for i in common::cases("softmax", "x") {
        let (x, sx) = fixture32(&format!("softmax_{i}.x"));
        let (want, _) = fixture(&format!("softmax_{i}.y"));
        let got = read(be, &be.softmax(&be.upload(&x, &sx).unwrap()).unwrap());
        assert_close(&format!("softmax case {i} {sx:?}"), &got, &want, Tol::NORM);
    }
}
on_both_backends!(softmax_matches_pytorch, super::softmax_matches_pytorch);

fn quick_gelu_matches_pytorch<B: Backend>(be: &B) {
    let (x, sx) = fixture32("quick_gelu_0.x");
    let (want, _) = fixture("quick_gelu_0.y");
    let got = read(be, &be.quick_gelu(&be.upload(&x, &sx).unwrap()).unwrap());
    assert_close("x·sigmoid(1.702x)", &got, &want, Tol::ELEMENTWISE);
}
on_both_backends!(quick_gelu_matches_pytorch, super::quick_gelu_matches_pytorch);

fn elementwise_known_values<B: Backend>(be: &B) {
    let a = be.upload(&[1.0, -2.0, 3.5], &[3]).unwrap();
    let b = be.upload(&[0.5, 2.0, -1.0], &[3]).unwrap();
    assert_close("add", &read(be, &be.add(&a, &b).unwrap()), &[1.5, 0.0, 2.5], Tol::EXACT);
    assert_close("scale", &read(be, &be.scale(&a, -2.0).unwrap()), &[-2.0, 4.0, -7.0], Tol::EXACT);
    assert_close("affine", &read(be, &be.affine(&a, -1.0, 1.0).unwrap()), &[0.0, 3.0, -2.5], Tol::EXACT);
    let r = be.reshape(&be.upload(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap(), &[3, 2]).unwrap();
    assert_eq!(tokenclip::backend::TensorInfo::shape(&r), &[3, 2]);
    assert_close("reshape", &read(be, &r), &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], Tol::EXACT);
    let err = be.reshape(&r, &[4, 2]).unwrap_err();
    assert!(matches!(err, BackendError::ShapeMismatch { op: "reshape", .. }), "{err}");
    let err = be.add(&a, &be.upload(&[1.0; 4], &[4]).unwrap()).unwrap_err();
    assert!(matches!(err, BackendError::ShapeMismatch { op: "add", .. }), "{err}");
}
on_both_backends!(elementwise_known_values, super::elementwise_known_values);

fn row_max_known_values<B: Backend>(be: &B) {
    let x = be.upload(&[1.0, -2.0, 3.5, -7.0, -0.5, -9.0, 0.0, 0.0, 0.0], &[3, 3]).unwrap();
    let m = be.row_max(&x).unwrap();
    assert_eq!(tokenclip::backend::TensorInfo::shape(&m), &[3]);
    assert_close("row_max", &read(be, &m), &[3.5, -0.5, 0.0], Tol::EXACT);
    let one = be.upload(&[-1.5e6, 2.0], &[2, 1]).unwrap();
    assert_close("row_max of one column", &read(be, &be.row_max(&one).unwrap()), &[-1.5e6, 2.0], Tol::EXACT);
}
on_both_backends!(row_max_known_values, super::row_max_known_values);

fn compare(rows: usize, cols: usize, spread: f32, seed: u64) {
    let Some(g) = gpu("softmax_gpu_matches_cpu") else { return };
    let x = random(rows * cols, seed, -spread, spread);
    let y = random(rows * cols, seed + 1, -spread, spread);
    let what = format!("[{rows}, {cols}] spread {spread}");
    let c = cpu();
    assert_close32(
        &format!("softmax {what}"),
        &read(g, &g.softmax(&g.upload(&x, &[rows, cols]).unwrap()).unwrap()),
        &read(&c, &c.softmax(&c.upload(&x, &[rows, cols]).unwrap()).unwrap()),
        Tol::NORM,
    );
    // A maximum is exact: the GPU must pick the very same element.
    assert_close32(
        &format!("row_max {what}"),
        &read(g, &g.row_max(&g.upload(&x, &[rows, cols]).unwrap()).unwrap()),
        &read(&c, &c.row_max(&c.upload(&x, &[rows, cols]).unwrap()).unwrap()),
        Tol::EXACT,
    );
    assert_close32(
        &format!("quick_gelu {what}"),
        &read(g, &g.quick_gelu(&g.upload(&x, &[rows, cols]).unwrap()).unwrap()),
        &read(&c, &c.quick_gelu(&c.upload(&x, &[rows, cols]).unwrap()).unwrap()),
        Tol::ELEMENTWISE,
    );
    assert_close32(
        &format!("gelu {what}"),
        &read(g, &g.gelu(&g.upload(&x, &[rows, cols]).unwrap()).unwrap()),
        &read(&c, &c.gelu(&c.upload(&x, &[rows, cols]).unwrap()).unwrap()),
        Tol::ELEMENTWISE,
    );
    assert_close32(
        &format!("add {what}"),
        &read(g, &g.add(&g.upload(&x, &[rows, cols]).unwrap(), &g.upload(&y, &[rows, cols]).unwrap()).unwrap()),
        &read(&c, &c.add(&c.upload(&x, &[rows, cols]).unwrap(), &c.upload(&y, &[rows, cols]).unwrap()).unwrap()),
        Tol::ELEMENTWISE,
    );
    assert_close32(
        &format!("affine {what}"),
        &read(g, &g.affine(&g.upload(&x, &[rows, cols]).unwrap(), -1.0, 1.0).unwrap()),
        &read(&c, &c.affine(&c.upload(&x, &[rows, cols]).unwrap(), -1.0, 1.0).unwrap()),
        Tol::ELEMENTWISE,
    );
    assert_close32(
        &format!("scale {what}"),
        &read(g, &g.scale(&g.upload(&x, &[rows, cols]).unwrap(), 0.125).unwrap()),
        &read(&c, &c.scale(&c.upload(&x, &[rows, cols]).unwrap(), 0.125).unwrap()),
        Tol::ELEMENTWISE,
    );
}

#[test]
fn softmax_gpu_matches_cpu_edge_shapes() {
    for (rows, cols) in [(1, 1), (1, 2), (3, 7), (2, 64), (2, 65), (3, 255), (3, 256), (3, 257), (2, 1370), (16, 77)] {
        compare(rows, cols, 4.0, (rows * 7919 + cols) as u64);
    }
    compare(2, 300, 80.0, 3);
}

#[test]
fn elementwise_gpu_folds_past_65535_workgroups() {
    // 65,536 × 257 elements need 65,793 workgroups of 256: folded into y.
    compare(65_536, 257, 1.0, 5);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]
    #[test]
    fn softmax_gpu_matches_cpu_random_shapes(rows in 1usize..50, cols in 1usize..1500, seed in any::<u64>()) {
        compare(rows, cols, 6.0, seed);
    }
}
