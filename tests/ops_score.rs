//! `token_probabilities` (METHOD.md B6): known values computed by hand in f64, the M = 1 case
//! against plain two-way softmax scoring, GPU against the CPU twin on edge and random shapes, and
//! argument errors.

mod common;

use common::{assert_close, assert_close32, cpu, gpu, random, read, Tol};
use proptest::prelude::*;
use tokenclip::backend::{Backend, BackendError, ScoreMix};

fn normalize(v: &[f64]) -> Vec<f64> {
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.iter().map(|x| x / n).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn p_abnormal(n: f64, a: f64, tau: f64) -> f64 {
    1.0 / (1.0 + ((n - a) / tau).exp())
}

/// A float64 reference of both mixes, written from METHOD.md B6 independently of the twin.
fn reference(p: &[f32], w: &[f32], tn: &[f32], ta: &[f32], d: usize, tau: f64, mix: ScoreMix) -> Vec<f64> {
    let m = w.len() / (p.len() / d);
    let f = |x: &[f32]| x.iter().map(|&v| f64::from(v)).collect::<Vec<_>>();
    let (tn, ta) = (f(tn), f(ta));
    p.chunks_exact(d)
        .zip(w.chunks_exact(m))
        .map(|(pi, wi)| {
            let pi = f(pi);
            match mix {
                ScoreMix::Embeddings => {
                    let mixed = |t: &[f64]| {
                        normalize(
                            &(0..d).map(|c| (0..m).map(|j| f64::from(wi[j]) * t[j * d + c]).sum()).collect::<Vec<_>>(),
                        )
                    };
                    p_abnormal(dot(&pi, &mixed(&tn)), dot(&pi, &mixed(&ta)), tau)
                }
                ScoreMix::Probabilities => (0..m)
                    .map(|j| {
                        let (n, a) = (dot(&pi, &tn[j * d..(j + 1) * d]), dot(&pi, &ta[j * d..(j + 1) * d]));
                        f64::from(wi[j]) * p_abnormal(n, a, tau)
                    })
                    .sum(),
            }
        })
        .collect()
}

fn unit_rows(rows: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut x = random(rows * d, seed, -1.0, 1.0);
    for r in x.chunks_exact_mut(d) {
        let n = r.iter().map(|v| v * v).sum::<f32>().sqrt();
        r.iter_mut().for_each(|v| *v /= n);
    }
    x
}

fn weights(n: usize, m: usize, seed: u64) -> Vec<f32> {
    let mut w = random(n * m, seed, 0.0, 1.0);
    for r in w.chunks_exact_mut(m) {
        r[0] = 0.0; // a zero weight, as top-K leaves
        let s: f32 = r.iter().sum();
        r.iter_mut().for_each(|v| *v = if s > 0.0 { *v / s } else { 1.0 / m as f32 });
    }
    w
}

/// One problem: patches `[N, D]`, weights `[N, M]`, text embeddings `[M, D]` each.
struct Problem {
    n: usize,
    d: usize,
    m: usize,
    p: Vec<f32>,
    w: Vec<f32>,
    tn: Vec<f32>,
    ta: Vec<f32>,
}

impl Problem {
    /// Random unit rows and top-K-like weights (pass `w` to override them).
    fn new(n: usize, d: usize, m: usize, seed: u64, w: Option<Vec<f32>>) -> Self {
        let (p, tn, ta) = (unit_rows(n, d, seed), unit_rows(m, d, seed + 1), unit_rows(m, d, seed + 2));
        let w = w.unwrap_or_else(|| weights(n, m, seed + 3));
        Problem { n, d, m, p, w, tn, ta }
    }

    fn run<B: Backend>(&self, be: &B, mix: ScoreMix) -> Vec<f32> {
        let Problem { n, d, m, .. } = *self;
        let t = |x: &[f32], s: &[usize]| be.upload(x, s).unwrap();
        let (p, w) = (t(&self.p, &[n, d]), t(&self.w, &[n, m]));
        read(be, &be.token_probabilities(&p, &w, &t(&self.tn, &[m, d]), &t(&self.ta, &[m, d]), 0.07, mix).unwrap())
    }

    fn reference(&self, mix: ScoreMix) -> Vec<f64> {
        reference(&self.p, &self.w, &self.tn, &self.ta, self.d, 0.07, mix)
    }
}

fn token_probabilities_match_float64<B: Backend>(be: &B) {
    for (n, d, m) in [(1, 1, 1), (5, 64, 4), (37, 77, 3), (3, 768, 64)] {
        let pb = Problem::new(n, d, m, 1, None);
        for mix in [ScoreMix::Embeddings, ScoreMix::Probabilities] {
            assert_close(&format!("[{n}, {d}] M {m} {mix:?}"), &pb.run(be, mix), &pb.reference(mix), Tol::TRANSPORT);
        }
    }
}
on_both_backends!(token_probabilities_match_float64, super::token_probabilities_match_float64);

/// With one subspace of weight 1 both mixes are AnomalyCLIP's two-way softmax of METHOD.md A4.
fn single_subspace_is_two_way_softmax<B: Backend>(be: &B) {
    let (n, d) = (50, 32);
    let pb = Problem::new(n, d, 1, 5, Some(vec![1.0; n]));
    let (tn, ta) = (&pb.tn, &pb.ta);
    let want: Vec<f64> =
        pb.p.chunks_exact(d)
            .map(|pi| {
                let s = |t: &[f32]| pi.iter().zip(t).map(|(a, b)| f64::from(a * b)).sum::<f64>() / 0.07;
                let (a, b) = (s(tn), s(ta));
                b.exp() / (a.exp() + b.exp())
            })
            .collect();
    for mix in [ScoreMix::Embeddings, ScoreMix::Probabilities] {
        assert_close(&format!("M = 1 {mix:?}"), &pb.run(be, mix), &want, Tol::TRANSPORT);
    }
}
on_both_backends!(single_subspace_is_two_way_softmax, super::single_subspace_is_two_way_softmax);

fn token_probabilities_reject_bad_arguments<B: Backend>(be: &B) {
    let t = |s: &[usize]| be.upload(&vec![0.5; s.iter().product()], s).unwrap();
    type Case<'a> = (&'a [usize], &'a [usize], &'a [usize], &'a [usize], f32, &'a str);
    let cases: [Case<'_>; 5] = [
        (&[4, 8], &[3, 2], &[2, 8], &[2, 8], 0.07, "weights"),
        (&[4, 8], &[4, 2], &[2, 7], &[2, 8], 0.07, "text_normal"),
        (&[4, 8], &[4, 2], &[2, 8], &[3, 8], 0.07, "text_abnormal"),
        (&[4, 8], &[4, 65], &[65, 8], &[65, 8], 0.07, "M"),
        (&[4, 8], &[4, 2], &[2, 8], &[2, 8], 0.0, "temperature"),
    ];
    for (p, w, tn, ta, tau, what) in cases {
        let err = be.token_probabilities(&t(p), &t(w), &t(tn), &t(ta), tau, ScoreMix::Embeddings).unwrap_err();
        assert!(
            matches!(
                err,
                BackendError::ShapeMismatch { .. }
                    | BackendError::LimitExceeded { .. }
                    | BackendError::InvalidArgument { .. }
            ),
            "{what}: {err}"
        );
    }
}
on_both_backends!(token_probabilities_reject_bad_arguments, super::token_probabilities_reject_bad_arguments);

fn compare(n: usize, d: usize, m: usize, seed: u64) {
    let Some(g) = gpu("token_probabilities_gpu_matches_cpu") else { return };
    let pb = Problem::new(n, d, m, seed, None);
    for mix in [ScoreMix::Embeddings, ScoreMix::Probabilities] {
        assert_close32(&format!("[{n}, {d}] M {m} {mix:?}"), &pb.run(g, mix), &pb.run(&cpu(), mix), Tol::TRANSPORT);
    }
}

#[test]
fn token_probabilities_gpu_matches_cpu_edge_shapes() {
    for (n, d, m) in [(1, 1, 1), (1369, 768, 4), (257, 65, 7), (3, 1025, 64), (70_000, 3, 2)] {
        compare(n, d, m, (n + d + m) as u64);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    #[test]
    fn token_probabilities_gpu_matches_cpu_random_shapes(n in 1usize..400, d in 1usize..300, m in 1usize..9, seed in any::<u64>()) {
        compare(n, d, m, seed);
    }
}
