//! matmul: PyTorch fixtures on both backends, GPU against the CPU twin on edge and random shapes
//! (tiles are 64×64×16, so sizes around 1, 15–17, 63–65, 255–257 matter), f16 weights, errors.

mod common;

use common::{assert_close, assert_close32, cpu, fixture, fixture32, gpu, read, Tol};
use proptest::prelude::*;
use tokenclip::backend::{BLayout, Backend, BackendError, TensorInfo};

/// One matmul problem: `a` is `[batch?, m, k]`; `b` is shared or batched, in `layout`.
#[derive(Debug, Clone)]
struct Problem {
    batch: Option<usize>,
    m: usize,
    k: usize,
    n: usize,
    layout: BLayout,
    b_batched: bool,
    bias: bool,
    f16: bool,
    seed: u64,
}

fn run<B: Backend>(be: &B, p: &Problem) -> Vec<f32> {
    let nb = p.batch.unwrap_or(1);
    let a_shape: Vec<usize> = p.batch.into_iter().chain([p.m, p.k]).collect();
    let mat = match p.layout {
        BLayout::RowMajor => [p.k, p.n],
        BLayout::Transposed => [p.n, p.k],
    };
    let b_shape: Vec<usize> = if p.b_batched { [nb].into_iter().chain(mat).collect() } else { mat.to_vec() };
    let a = be.upload(&common::random(nb * p.m * p.k, p.seed, -1.0, 1.0), &a_shape).expect("upload a");
    let b_vals = common::random(b_shape.iter().product(), p.seed + 1, -1.0, 1.0);
    let bias_vals = common::random(p.n, p.seed + 2, -1.0, 1.0);
    let (b, bias) = if p.f16 {
        let h = |v: &[f32]| v.iter().map(|&x| half::f16::from_f32(x)).collect::<Vec<_>>();
        (
            be.upload_f16(&h(&b_vals), &b_shape).expect("upload b"),
            be.upload_f16(&h(&bias_vals), &[p.n]).expect("upload bias"),
        )
    } else {
        (be.upload(&b_vals, &b_shape).expect("upload b"), be.upload(&bias_vals, &[p.n]).expect("upload bias"))
    };
    let c = be.matmul(&a, &b, p.bias.then_some(&bias), p.layout).expect("matmul");
    let want: Vec<usize> = p.batch.into_iter().chain([p.m, p.n]).collect();
    assert_eq!(c.shape(), &want[..]);
    read(be, &c)
}

fn plain(m: usize, k: usize, n: usize) -> Problem {
    Problem {
        batch: None,
        m,
        k,
        n,
        layout: BLayout::RowMajor,
        b_batched: false,
        bias: false,
        f16: false,
        seed: (m * 31 + k * 7 + n) as u64,
    }
}

fn matches_pytorch<B: Backend>(be: &B) {
    for i in 0..4 {
        let (a, sa) = fixture32(&format!("linear_{i}.a"));
        let (w, sw) = fixture32(&format!("linear_{i}.w"));
        let (bias, sb) = fixture32(&format!("linear_{i}.bias"));
        let (want, _) = fixture(&format!("linear_{i}.y"));
        let (a, w, bias) = (be.upload(&a, &sa).unwrap(), be.upload(&w, &sw).unwrap(), be.upload(&bias, &sb).unwrap());
        let got = read(be, &be.matmul(&a, &w, Some(&bias), BLayout::Transposed).unwrap());
        assert_close(&format!("F.linear case {i}"), &got, &want, Tol::MATMUL);
    }
    for i in 0..2 {
        let (a, sa) = fixture32(&format!("matmul_{i}.a"));
        let (b, sb) = fixture32(&format!("matmul_{i}.b"));
        let (want, _) = fixture(&format!("matmul_{i}.y"));
        let got = read(
            be,
            &be.matmul(&be.upload(&a, &sa).unwrap(), &be.upload(&b, &sb).unwrap(), None, BLayout::RowMajor).unwrap(),
        );
        assert_close(&format!("a @ b case {i}"), &got, &want, Tol::MATMUL);
    }
    let (a, sa) = fixture32("bmm_0.a");
    let (b, sb) = fixture32("bmm_0.b");
    let (want, _) = fixture("bmm_0.y");
    let got = read(
        be,
        &be.matmul(&be.upload(&a, &sa).unwrap(), &be.upload(&b, &sb).unwrap(), None, BLayout::RowMajor).unwrap(),
    );
    assert_close("torch.bmm", &got, &want, Tol::MATMUL);
}
on_both_backends!(matmul_matches_pytorch, super::matches_pytorch);

#[test]
fn matmul_gpu_matches_cpu_edge_shapes() {
    let Some(g) = gpu("matmul_gpu_matches_cpu_edge_shapes") else { return };
    let mut problems: Vec<Problem> = [
        (1, 1, 1),
        (1, 256, 1),
        (3, 5, 7),
        (16, 16, 16),
        (17, 15, 17),
        (64, 64, 64),
        (63, 65, 64),
        (65, 17, 129),
        (255, 33, 257),
        (2, 1025, 3),
        (130, 768, 66),
    ]
    .iter()
    .map(|&(m, k, n)| plain(m, k, n))
    .collect();
    problems.push(Problem { layout: BLayout::Transposed, bias: true, ..plain(70, 33, 65) });
    problems.push(Problem { layout: BLayout::Transposed, bias: true, f16: true, ..plain(70, 33, 65) });
    problems.push(Problem { f16: true, bias: true, ..plain(9, 7, 5) });
    problems.push(Problem { batch: Some(3), ..plain(5, 7, 6) });
    problems.push(Problem { batch: Some(3), b_batched: true, ..plain(65, 9, 66) });
    problems.push(Problem { batch: Some(2), b_batched: true, layout: BLayout::Transposed, ..plain(17, 64, 77) });
    for p in &problems {
        assert_close32(&format!("{p:?}"), &run(g, p), &run(&cpu(), p), Tol::MATMUL);
    }
}

fn problem() -> impl Strategy<Value = Problem> {
    (
        1usize..140,
        1usize..140,
        1usize..140,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        prop_oneof![Just(None), (1usize..4).prop_map(Some)],
        any::<bool>(),
        any::<u64>(),
    )
        .prop_map(|(m, k, n, t, bias, f16, batch, bb, seed)| {
            let b_batched = batch.is_some() && bb;
            Problem {
                batch,
                m,
                k,
                n,
                layout: if t { BLayout::Transposed } else { BLayout::RowMajor },
                b_batched,
                bias,
                f16: f16 && !b_batched,
                seed,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]
    #[test]
    fn matmul_gpu_matches_cpu_random_shapes(p in problem()) {
        let Some(g) = gpu("matmul_gpu_matches_cpu_random_shapes") else { return Ok(()) };
        assert_close32(&format!("{p:?}"), &run(g, &p), &run(&cpu(), &p), Tol::MATMUL);
    }
}

fn rejects_bad_operands<B: Backend>(be: &B) {
    let a = be.upload(&[1.0; 6], &[2, 3]).unwrap();
    let b = be.upload(&[1.0; 8], &[4, 2]).unwrap();
    let err = be.matmul(&a, &b, None, BLayout::RowMajor).unwrap_err();
    assert!(matches!(err, BackendError::ShapeMismatch { op: "matmul", operand: "b", .. }), "{err}");
    assert!(err.to_string().contains("K = 3"), "{err}");
    let b = be.upload(&[1.0; 6], &[3, 2]).unwrap();
    let bias = be.upload(&[1.0; 3], &[3]).unwrap();
    let err = be.matmul(&a, &b, Some(&bias), BLayout::RowMajor).unwrap_err();
    assert!(matches!(err, BackendError::ShapeMismatch { operand: "bias", .. }), "{err}");
    let h = be.upload_f16(&[half::f16::ONE; 6], &[2, 3]).unwrap();
    let err = be.matmul(&h, &b, None, BLayout::RowMajor).unwrap_err();
    assert!(matches!(err, BackendError::DTypeMismatch { operand: "a", .. }), "{err}");
    let err = be.upload(&[], &[0, 3]).unwrap_err();
    assert!(matches!(err, BackendError::EmptyTensor { .. }), "{err}");
    let err = be.upload(&[1.0; 5], &[2, 3]).unwrap_err();
    assert!(matches!(err, BackendError::ShapeMismatch { op: "upload", .. }), "{err}");
}
on_both_backends!(matmul_rejects_bad_operands, super::rejects_bad_operands);
