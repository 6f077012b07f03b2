//! Gradient checks: f64 central finite differences of the total and of each term, both mixes,
//! with the plan held fixed (computed once, passed in), plus degenerate batches and input errors.

use super::*;
use crate::clip::config::Mix;

const M: usize = 3;
const D: usize = 8;
const GRID: usize = 3;
const SIZE: usize = 7;

struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
    /// `rows` unit vectors of width `d`, correlated through a shared direction.
    fn units(&mut self, rows: usize, d: usize, shared: f64) -> Vec<f32> {
        let base: Vec<f64> = (0..d).map(|_| self.normal()).collect();
        let mut out = Vec::with_capacity(rows * d);
        for _ in 0..rows {
            let v: Vec<f64> = base.iter().map(|b| shared * b + self.normal()).collect();
            let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            out.extend(v.iter().map(|x| (x / n) as f32));
        }
        out
    }
}

/// One normal image (zero mask), one anomalous with a mask, one anomalous without a mask; two
/// feature layers.
fn batch(rng: &mut Rng) -> Vec<TrainImage> {
    let mut mask = vec![0.0f32; SIZE * SIZE];
    for y in 1..4 {
        for x in 2..6 {
            mask[y * SIZE + x] = 1.0;
        }
    }
    mask[6 * SIZE + 6] = 1.0;
    let mut image = |label: bool, mask: Option<Vec<f32>>| TrainImage {
        patches: (0..2).map(|_| rng.units(GRID * GRID, D, 0.8)).collect(),
        global: rng.units(1, D, 0.0),
        grid: GRID,
        label,
        mask,
    };
    vec![image(false, Some(vec![0.0; SIZE * SIZE])), image(true, Some(mask)), image(true, None)]
}

fn config(mix: Mix) -> LossConfig {
    let mut cfg = LossConfig::new(DetectionConfig { mix, ..DetectionConfig::default() }, SIZE);
    cfg.lambda_orth = 0.5;
    cfg
}

fn text(rng: &mut Rng) -> (Vec<f64>, Vec<f64>) {
    let f = |v: Vec<f32>| v.into_iter().map(f64::from).collect();
    (f(rng.units(M, D, 0.3)), f(rng.units(M, D, 0.3)))
}

const TERMS: [(&str, Coefficients); 6] = [
    ("total", Coefficients { ce: 1.0, focal: 4.0, dice_abnormal: 4.0, dice_normal: 4.0, orth: 0.5 }),
    ("ce", Coefficients { ce: 1.0, focal: 0.0, dice_abnormal: 0.0, dice_normal: 0.0, orth: 0.0 }),
    ("focal", Coefficients { ce: 0.0, focal: 1.0, dice_abnormal: 0.0, dice_normal: 0.0, orth: 0.0 }),
    ("dice_abnormal", Coefficients { ce: 0.0, focal: 0.0, dice_abnormal: 1.0, dice_normal: 0.0, orth: 0.0 }),
    ("dice_normal", Coefficients { ce: 0.0, focal: 0.0, dice_abnormal: 0.0, dice_normal: 1.0, orth: 0.0 }),
    ("orth", Coefficients { ce: 0.0, focal: 0.0, dice_abnormal: 0.0, dice_normal: 0.0, orth: 1.0 }),
];

fn finite_differences_match(mix: Mix) {
    let mut rng = Rng(0x5EED_0001 + mix as u64);
    let batch = batch(&mut rng);
    let (t_n, t_a) = text(&mut rng);
    let cfg = config(mix);
    let to32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let w = token_weights(&to32(&t_n), &to32(&t_a), M, D, &batch, &cfg.detection).expect("weights");
    let eval = |n: &[f64], a: &[f64], k| loss_and_grad_terms(n, a, M, D, &batch, &w, &cfg, k).expect("loss");
    let h = 1e-6;
    let mut worst = 0.0f64;
    for (name, k) in TERMS {
        let (terms, gn, ga) = eval(&t_n, &t_a, k);
        assert!(terms.total.is_finite() && terms.pixel_images == 2, "{name}: {terms:?}");
        let scale = gn.iter().chain(&ga).fold(0.0f64, |s, g| s.max(g.abs()));
        assert!(name == "orth" || scale > 1e-3, "{name}: gradient vanishes ({scale}), the check would be empty");
        for which in 0..2 {
            for i in 0..M * D {
                let (mut n, mut a) = (t_n.clone(), t_a.clone());
                let v = if which == 0 { &mut n } else { &mut a };
                v[i] += h;
                let plus = eval(&n, &a, k).0.total;
                let v = if which == 0 { &mut n } else { &mut a };
                v[i] -= 2.0 * h;
                let minus = eval(&n, &a, k).0.total;
                let fd = (plus - minus) / (2.0 * h);
                let an = if which == 0 { gn[i] } else { ga[i] };
                let err = (fd - an).abs();
                worst = worst.max(err / scale.max(1e-12));
                assert!(
                    err <= 1e-7 * scale.max(1.0),
                    "{mix:?} {name} d/d{}[{i}]: fd {fd} vs analytic {an}",
                    ["t_n", "t_a"][which]
                );
            }
        }
    }
    eprintln!("{mix:?}: worst |fd − analytic| / max|grad| = {worst:.2e}");
}

#[test]
fn gradient_matches_finite_differences_embeddings() {
    finite_differences_match(Mix::Embeddings);
}

#[test]
fn gradient_matches_finite_differences_probabilities() {
    finite_differences_match(Mix::Probabilities);
}

#[test]
fn total_is_the_weighted_sum_and_gradients_are_tangent() {
    let mut rng = Rng(7);
    let batch = batch(&mut rng);
    let (t_n, t_a) = text(&mut rng);
    let cfg = config(Mix::Embeddings);
    let (t, gn, ga) = loss_and_grad(&t_n, &t_a, M, D, &batch, &cfg).expect("loss");
    let want = t.ce + 4.0 * (t.focal + t.dice_abnormal + t.dice_normal) + 0.5 * t.orth;
    assert!((t.total - want).abs() <= 1e-12 * want, "{t:?}");
    for (u, g) in t_n.chunks(D).zip(gn.chunks(D)).chain(t_a.chunks(D).zip(ga.chunks(D))) {
        let radial: f64 = u.iter().zip(g).map(|(a, b)| a * b).sum();
        assert!(radial.abs() <= 1e-12, "⟨t, dt⟩ = {radial}");
    }
    // f32 agrees with f64 on the same inputs.
    let (n32, a32): (Vec<f32>, Vec<f32>) =
        (t_n.iter().map(|&x| x as f32).collect(), t_a.iter().map(|&x| x as f32).collect());
    let (t32, gn32, _) = loss_and_grad(&n32, &a32, M, D, &batch, &cfg).expect("loss");
    assert!((t32.total - t.total).abs() <= 1e-5 * t.total, "{} vs {}", t32.total, t.total);
    let scale = gn.iter().fold(0.0f64, |s, g| s.max(g.abs()));
    for (a, b) in gn32.iter().zip(&gn) {
        assert!((f64::from(*a) - b).abs() <= 1e-4 * scale, "{a} vs {b}");
    }
}

#[test]
fn batch_without_masks_has_zero_pixel_terms() {
    let mut rng = Rng(11);
    let mut batch = batch(&mut rng);
    batch.iter_mut().for_each(|b| b.mask = None);
    let (t_n, t_a) = text(&mut rng);
    let cfg = config(Mix::Embeddings);
    let (t, gn, ga) = loss_and_grad(&t_n, &t_a, M, D, &batch, &cfg).expect("loss");
    assert_eq!(t.pixel_images, 0);
    assert_eq!((t.focal, t.dice_abnormal, t.dice_normal), (0.0, 0.0, 0.0));
    assert!((t.total - (t.ce + 0.5 * t.orth)).abs() <= 1e-12 && t.total.is_finite());
    assert!(gn.iter().chain(&ga).all(|g| g.is_finite()));
}

#[test]
fn single_subspace_has_no_orthogonality_term() {
    let mut rng = Rng(13);
    let batch = batch(&mut rng);
    let (t_n, t_a) = (rng.units(1, D, 0.0), rng.units(1, D, 0.0));
    let (t, _, _) = loss_and_grad(&t_n, &t_a, 1, D, &batch, &config(Mix::Probabilities)).expect("loss");
    assert_eq!((t.orth, t.mean_offdiag_cosine), (0.0, 0.0));
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let mut rng = Rng(17);
    let good = batch(&mut rng);
    let (t_n, t_a) = text(&mut rng);
    let cfg = config(Mix::Embeddings);
    let run = |b: &[TrainImage], n: &[f64], m: usize, cfg: &LossConfig| loss_and_grad(n, &t_a, m, D, b, cfg).is_err();
    assert!(run(&[], &t_n, M, &cfg), "empty batch");
    assert!(run(&good, &t_n[1..], M, &cfg), "short t_n");
    assert!(run(&good, &t_n, 0, &cfg), "M = 0");
    let mut nan = t_n.clone();
    nan[3] = f64::NAN;
    assert!(run(&good, &nan, M, &cfg), "NaN");
    let mut b = good.clone();
    b[1].mask = Some(vec![0.0; 5]);
    assert!(run(&b, &t_n, M, &cfg), "mask size");
    let mut b = good.clone();
    b[2].patches.pop();
    assert!(run(&b, &t_n, M, &cfg), "layer count");
    let mut b = good.clone();
    b[0].global.push(0.0);
    assert!(run(&b, &t_n, M, &cfg), "global width");
    let mut bad = cfg.clone();
    bad.detection.temperature = 0.0;
    assert!(run(&good, &t_n, M, &bad), "τ = 0");
    let w = TokenWeights { subspaces: M, weights: vec![Vec::new(); 3] };
    assert!(loss_and_grad_with_weights(&t_n, &t_a, M, D, &good, &w, &cfg).is_err(), "weights missing");
}

/// Training assigns as detection does (`--assign`): greedy one-hot at each token's most
/// similar axis `normalize(t_n + t_a)`, uniform `1/M`; OT differs from both.
#[test]
fn assignment_variants_give_the_described_weights() {
    use crate::clip::config::Assign;
    let mut rng = Rng(0x5EED_0A55);
    let batch = batch(&mut rng);
    let (t_n, t_a) = text(&mut rng);
    let to32 = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
    let weights = |assign| {
        let det = DetectionConfig { assign, ..DetectionConfig::default() };
        token_weights(&to32(&t_n), &to32(&t_a), M, D, &batch, &det).expect("weights")
    };
    let axes: Vec<Vec<f64>> = (0..M)
        .map(|j| {
            let v: Vec<f64> = (0..D).map(|c| t_n[j * D + c] + t_a[j * D + c]).collect();
            let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
            v.iter().map(|x| x / n).collect()
        })
        .collect();
    let (greedy, uniform, ot) = (weights(Assign::Greedy), weights(Assign::Uniform), weights(Assign::Ot));
    let mut chosen = [0usize; M];
    for (img, (g, u)) in batch.iter().zip(greedy.weights.iter().zip(&uniform.weights)) {
        assert_eq!(g.len(), if img.mask.is_some() { 2 } else { 0 }, "masked images only");
        for (layer, (gl, ul)) in img.patches.iter().zip(g.iter().zip(u)) {
            assert!(ul.iter().all(|&w| w == 1.0 / M as f32));
            for (p, row) in layer.chunks_exact(D).zip(gl.chunks_exact(M)) {
                let sim = |j: usize| axes[j].iter().zip(p).map(|(a, b)| a * f64::from(*b)).sum::<f64>();
                let best = (0..M).fold(0, |b, j| if sim(j) > sim(b) { j } else { b });
                chosen[best] += 1;
                let want: Vec<f32> = (0..M).map(|j| if j == best { 1.0 } else { 0.0 }).collect();
                assert_eq!(row, want.as_slice());
            }
        }
    }
    assert!(chosen.iter().filter(|&&c| c > 0).count() >= 2, "degenerate: {chosen:?}");
    assert_ne!(ot.weights, greedy.weights);
    assert_ne!(ot.weights, uniform.weights);
}
