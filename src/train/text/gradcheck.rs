//! Finite-difference gradient checks in f64 for the unit tests of this module.

use crate::train::rng::Rng;

/// Central-difference step.
pub const H: f64 = 1e-6;

/// `n` standard-normal values.
pub fn randn(rng: &mut Rng, n: usize, scale: f64) -> Vec<f64> {
    (0..n).map(|_| rng.normal() * scale).collect()
}

/// `Σ a ⊙ b`.
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Checks the analytic gradient `grad` of the scalar `f` at `x` by central differences: along
/// three random directions (relative error ≤ 1e-6) and per element (|fd − g| ≤ 1e-6 · (1 + max|g|)).
/// Returns the largest directional relative error.
#[track_caller]
pub fn check(name: &str, x: &[f64], grad: &[f64], f: impl Fn(&[f64]) -> f64) -> f64 {
    assert_eq!(x.len(), grad.len(), "{name}: gradient length");
    let at = |dir: &[f64], h: f64| f(&x.iter().zip(dir).map(|(a, d)| a + h * d).collect::<Vec<_>>());
    let mut rng = Rng::new(0x5EED ^ x.len() as u64);
    let mut worst: f64 = 0.0;
    for _ in 0..3 {
        let dir = randn(&mut rng, x.len(), 1.0);
        let fd = (at(&dir, H) - at(&dir, -H)) / (2.0 * H);
        let an = dot(grad, &dir);
        let rel = (fd - an).abs() / fd.abs().max(an.abs()).max(1e-12);
        worst = worst.max(rel);
        assert!(rel <= 1e-6, "{name}: directional derivative fd {fd:e} vs analytic {an:e} (rel {rel:e})");
    }
    let scale = 1.0 + grad.iter().fold(0.0f64, |m, g| m.max(g.abs()));
    let mut e = vec![0.0; x.len()];
    for i in 0..x.len() {
        e[i] = 1.0;
        let fd = (at(&e, H) - at(&e, -H)) / (2.0 * H);
        e[i] = 0.0;
        assert!((fd - grad[i]).abs() <= 1e-6 * scale, "{name}: element {i}: fd {fd:e} vs analytic {:e}", grad[i]);
    }
    worst
}
