//! Sinkhorn and top-K: float64 reference fixtures on both backends, marginals, GPU against the
//! CPU twin, and errors.

mod common;

use common::{assert_close, assert_close32, cpu, fixture, fixture32, fixture_scalar, gpu, random, read, Tol};
use proptest::prelude::*;
use tokenclip::backend::{Backend, BackendError, SinkhornParams};

fn sinkhorn_matches_float64_reference<B: Backend>(be: &B) {
    for i in common::cases("sinkhorn", "cost") {
        let (cost, shape) = fixture32(&format!("sinkhorn_{i}.cost"));
        let p = SinkhornParams {
            eps: fixture_scalar(&format!("sinkhorn_{i}.eps")) as f32,
            max_iters: fixture_scalar(&format!("sinkhorn_{i}.max_iters")) as u32,
            tol: fixture_scalar(&format!("sinkhorn_{i}.tol")) as f32,
        };
        let (want, _) = fixture(&format!("sinkhorn_{i}.plan"));
        let plan = read(be, &be.sinkhorn(&be.upload(&cost, &shape).unwrap(), p).unwrap());
        assert_close(&format!("sinkhorn case {i} {shape:?} {p:?}"), &plan, &want, Tol::TRANSPORT);
    }
}
on_both_backends!(sinkhorn_matches_float64_reference, super::sinkhorn_matches_float64_reference);

/// Run to convergence, the plan's column sums are 1/M (set by the last update) and its row sums
/// 1/N (met once the row scaling stops changing).
fn sinkhorn_meets_marginals<B: Backend>(be: &B) {
    let (n, m) = (300, 5);
    let cost = random(n * m, 7, 0.0, 2.0);
    let p = SinkhornParams { eps: 0.1, max_iters: 1000, tol: 1e-7 };
    let plan = read(be, &be.sinkhorn(&be.upload(&cost, &[n, m]).unwrap(), p).unwrap());
    for j in 0..m {
        let s: f64 = (0..n).map(|i| f64::from(plan[i * m + j])).sum();
        assert!((s - 1.0 / m as f64).abs() < 1e-4, "column {j} sums to {s}, want {}", 1.0 / m as f64);
    }
    for i in 0..n {
        let s: f64 = (0..m).map(|j| f64::from(plan[i * m + j])).sum();
        assert!((s - 1.0 / n as f64).abs() < 1e-4 / n as f64 * 10.0, "row {i} sums to {s}, want {}", 1.0 / n as f64);
    }
}
on_both_backends!(sinkhorn_meets_marginals, super::sinkhorn_meets_marginals);

fn top_k_matches_reference<B: Backend>(be: &B) {
    for i in common::cases("top_k", "x") {
        let (x, shape) = fixture32(&format!("top_k_{i}.x"));
        let k = fixture_scalar(&format!("top_k_{i}.k")) as usize;
        let (want, _) = fixture(&format!("top_k_{i}.y"));
        let got = read(be, &be.top_k_renorm(&be.upload(&x, &shape).unwrap(), k).unwrap());
        assert_close(&format!("top-{k} case {i} {shape:?}"), &got, &want, Tol::TRANSPORT);
        // Which entries survive is exact: zero where the reference is zero.
        for (j, (&g, &w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g == 0.0, w == 0.0, "top-{k} case {i}: entry {j} kept differently (got {g}, want {w})");
        }
    }
}
on_both_backends!(top_k_matches_reference, super::top_k_matches_reference);

fn compare(batch: usize, n: usize, m: usize, k: usize, eps: f32, seed: u64) {
    let Some(g) = gpu("transport_gpu_matches_cpu") else { return };
    let shape = if batch == 1 { vec![n, m] } else { vec![batch, n, m] };
    let cost = random(batch * n * m, seed, 0.0, 2.0);
    let p = SinkhornParams { eps, max_iters: 100, tol: 1e-2 };
    let cb = cpu();
    let plan_g = g.sinkhorn(&g.upload(&cost, &shape).unwrap(), p).unwrap();
    let plan_c = cb.sinkhorn(&cb.upload(&cost, &shape).unwrap(), p).unwrap();
    let what = format!("{shape:?} eps {eps}");
    assert_close32(&format!("sinkhorn {what}"), &read(g, &plan_g), &read(&cb, &plan_c), Tol::TRANSPORT);
    let wg = read(g, &g.top_k_renorm(&g.upload(&read(&cb, &plan_c), &shape).unwrap(), k).unwrap());
    let wc = read(&cb, &cb.top_k_renorm(&plan_c, k).unwrap());
    assert_close32(&format!("top-{k} {what}"), &wg, &wc, Tol::EXACT);
}

#[test]
fn transport_gpu_matches_cpu_edge_shapes() {
    for (b, n, m, k) in [(1, 1, 1, 1), (1, 1369, 4, 2), (3, 257, 7, 3), (2, 10, 64, 5), (1, 5000, 2, 1)] {
        compare(b, n, m, k, 0.1, (n + m) as u64);
    }
    compare(1, 100, 4, 2, 0.02, 1);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]
    #[test]
    fn transport_gpu_matches_cpu_random_shapes(b in 1usize..3, n in 1usize..700, m in 1usize..17, kf in 0.0f64..1.0, eps in 0.05f32..0.5, seed in any::<u64>()) {
        let k = 1 + ((m - 1) as f64 * kf) as usize;
        compare(b, n, m, k, eps, seed);
    }
}

fn transport_rejects_bad_arguments<B: Backend>(be: &B) {
    let cost = be.upload(&[0.5; 8], &[4, 2]).unwrap();
    assert!(matches!(
        be.sinkhorn(&cost, SinkhornParams { eps: 0.0, ..Default::default() }).unwrap_err(),
        BackendError::InvalidArgument { op: "sinkhorn", .. }
    ));
    assert!(matches!(be.top_k_renorm(&cost, 3).unwrap_err(), BackendError::InvalidArgument { op: "top_k_renorm", .. }));
    let wide = be.upload(&vec![0.5; 65], &[1, 65]).unwrap();
    assert!(matches!(
        be.sinkhorn(&wide, SinkhornParams::default()).unwrap_err(),
        BackendError::LimitExceeded { op: "sinkhorn", .. }
    ));
}
on_both_backends!(transport_rejects_bad_arguments, super::transport_rejects_bad_arguments);
