//! Adam (Kingma & Ba; PyTorch's `torch.optim.Adam` without weight decay or AMSGrad), the
//! optimiser of METHOD.md A5: lr 1e-3, betas (0.5, 0.999), eps 1e-8.

use serde::{Deserialize, Serialize};

/// Adam's hyperparameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamConfig {
    /// Learning rate.
    pub lr: f32,
    /// First-moment decay β1.
    pub beta1: f32,
    /// Second-moment decay β2.
    pub beta2: f32,
    /// Denominator floor ε.
    pub eps: f32,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig { lr: 1e-3, beta1: 0.5, beta2: 0.999, eps: 1e-8 }
    }
}

/// Adam's state for one flat parameter vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Adam {
    /// Hyperparameters.
    pub config: AdamConfig,
    /// Steps taken.
    pub step: u64,
    /// First moments.
    pub m: Vec<f32>,
    /// Second moments.
    pub v: Vec<f32>,
}

impl Adam {
    /// Fresh state for `len` parameters.
    pub fn new(config: AdamConfig, len: usize) -> Self {
        Adam { config, step: 0, m: vec![0.0; len], v: vec![0.0; len] }
    }

    /// One update of `params` with `grads` (same length), exactly as PyTorch's single-tensor
    /// Adam: bias corrections applied to the step size and the denominator.
    pub fn update(&mut self, params: &mut [f32], grads: &[f32]) {
        debug_assert_eq!(params.len(), grads.len());
        debug_assert_eq!(params.len(), self.m.len());
        self.step += 1;
        let AdamConfig { lr, beta1, beta2, eps } = self.config;
        let t = self.step as i32;
        let bias1 = 1.0 - beta1.powi(t);
        let bias2_sqrt = (1.0 - beta2.powi(t)).sqrt();
        let step_size = lr / bias1;
        for (((p, &g), m), v) in params.iter_mut().zip(grads).zip(&mut self.m).zip(&mut self.v) {
            *m = beta1 * *m + (1.0 - beta1) * g;
            *v = beta2 * *v + (1.0 - beta2) * g * g;
            let denom = v.sqrt() / bias2_sqrt + eps;
            *p -= step_size * *m / denom;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first step moves every parameter by lr·sign(g) (m̂ = g, v̂ = g²), whatever |g|.
    #[test]
    fn first_step_is_lr_times_sign() {
        let mut a = Adam::new(AdamConfig::default(), 3);
        let mut p = vec![1.0, 2.0, 3.0];
        a.update(&mut p, &[0.5, -2.0, 1e-3]);
        for (got, want) in p.iter().zip([1.0 - 1e-3, 2.0 + 1e-3, 3.0 - 1e-3]) {
            assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        }
    }

    /// Minimises a quadratic.
    #[test]
    fn converges_on_a_quadratic() {
        let mut a = Adam::new(AdamConfig { lr: 0.05, ..AdamConfig::default() }, 2);
        let mut p = vec![3.0f32, -2.0];
        for _ in 0..2000 {
            let g: Vec<f32> = p.iter().map(|x| 2.0 * x).collect();
            a.update(&mut p, &g);
        }
        assert!(p.iter().all(|x| x.abs() < 1e-2), "{p:?}");
    }
}
