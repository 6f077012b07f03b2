//! The copy family (slice_rows, concat_rows): known values on both backends, GPU against the
//! CPU twin on edge shapes, errors by name.

mod common;

use common::{assert_close, assert_close32, cpu, gpu, random, read, Tol};
use tokenclip::backend::{Backend, BackendError};

fn copy_known_values<B: Backend>(be: &B) {
    let x = be.upload(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2]).unwrap();
    let s = be.slice_rows(&x, 1, 2).unwrap();
    assert_eq!(tokenclip::backend::TensorInfo::shape(&s), &[2, 2]);
    assert_close("slice", &read(be, &s), &[3.0, 4.0, 5.0, 6.0], Tol::EXACT);
    let c = be.concat_rows(&be.slice_rows(&x, 2, 1).unwrap(), &x).unwrap();
    assert_eq!(tokenclip::backend::TensorInfo::shape(&c), &[4, 2]);
    assert_close("concat", &read(be, &c), &[5.0, 6.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0], Tol::EXACT);
}
on_both_backends!(copy_known_values, super::copy_known_values);

fn copy_rejects_bad_ranges<B: Backend>(be: &B) {
    let x = be.upload(&[0.0; 6], &[3, 2]).unwrap();
    for (start, count) in [(0, 0), (2, 2), (usize::MAX, 2), (3, 1)] {
        let err = be.slice_rows(&x, start, count).unwrap_err();
        assert!(matches!(err, BackendError::InvalidArgument { op: "slice_rows", .. }), "{err}");
    }
    let y = be.upload(&[0.0; 6], &[2, 3]).unwrap();
    let err = be.concat_rows(&x, &y).unwrap_err();
    assert!(matches!(err, BackendError::ShapeMismatch { op: "concat_rows", operand: "b", .. }), "{err}");
    let flat = be.upload(&[0.0; 6], &[6]).unwrap();
    let err = be.slice_rows(&flat, 0, 1).unwrap_err();
    assert!(matches!(err, BackendError::ShapeMismatch { op: "slice_rows", .. }), "{err}");
}
on_both_backends!(copy_rejects_bad_ranges, super::copy_rejects_bad_ranges);

#[test]
fn copy_gpu_matches_cpu_edge_shapes() {
    let Some(g) = gpu("copy_gpu_matches_cpu_edge_shapes") else { return };
    let c = cpu();
    // 65,537 rows × 1 column folds the dispatch grid; 257 and 1025 are not multiples of the workgroup.
    for (rows, cols, start, count) in [(1, 1, 0, 1), (1370, 1024, 1, 1369), (257, 3, 256, 1), (65_537, 1, 5, 65_532)] {
        let x = random(rows * cols, rows as u64, -1.0, 1.0);
        let what = format!("[{rows}, {cols}] rows {start}+{count}");
        let (xg, xc) = (g.upload(&x, &[rows, cols]).unwrap(), c.upload(&x, &[rows, cols]).unwrap());
        let sg = g.slice_rows(&xg, start, count).unwrap();
        let sc = c.slice_rows(&xc, start, count).unwrap();
        assert_close32(&what, &read(g, &sg), &read(&c, &sc), Tol::EXACT);
        let cg = g.concat_rows(&sg, &xg).unwrap();
        let cc = c.concat_rows(&sc, &xc).unwrap();
        assert_close32(&what, &read(g, &cg), &read(&c, &cc), Tol::EXACT);
    }
}
