//! AnomalyCLIP's loss terms (loss.py, train.py of `zqhang/AnomalyCLIP`) with their gradients:
//! the image cross-entropy, and per feature map the focal loss and the two Dice losses on the
//! upsampled two-channel map. Pixel gradients are pulled back to the g×g token probabilities by
//! the adjoint of the upsampling, so nothing S×S is kept per token.

use crate::clip::config::Mix;
use crate::train::real::Real;

use super::orth::{normalize_backward, normalize_rows};
use super::resize::{taps, upsample, upsample_adjoint};
use super::scoring::{self, Text, TokenGrad};
use super::{Coefficients, LossConfig, TrainImage};

/// FocalLoss's `smooth` (loss.py l.21): one-hot clamped to `[smooth/(C−1), 1 − smooth]`, C = 2,
/// and added to `pt`.
const FOCAL_SMOOTH: f64 = 1e-5;
/// BinaryDiceLoss's `smooth` (loss.py l.97).
const DICE_SMOOTH: f64 = 1.0;

/// Image loss: `F.cross_entropy((⟨f, t̄_n⟩, ⟨f, t̄_a⟩)/τ, label)`, mean over the batch, with
/// `t̄ = normalize(mean_m t^m)` of the normalised `n`, `a` (`[m, d]`). Adds `weight · dCE` to
/// `gn`, `ga` and returns CE.
#[allow(clippy::too_many_arguments)]
pub(super) fn image_loss<T: Real>(
    batch: &[TrainImage],
    n: &[T],
    a: &[T],
    m: usize,
    d: usize,
    tau: T,
    weight: T,
    gn: &mut [T],
    ga: &mut [T],
) -> f64 {
    let mean =
        |t: &[T]| -> Vec<T> { (0..d).map(|c| (0..m).map(|j| t[j * d + c]).sum::<T>() / T::from_usize(m)).collect() };
    let (mn, ma) = (mean(n), mean(a));
    let (bar_n, norm_n) = normalize_rows(&mn, 1, d);
    let (bar_a, norm_a) = normalize_rows(&ma, 1, d);
    let (mut dn, mut da) = (vec![T::ZERO; d], vec![T::ZERO; d]);
    let mut ce = T::ZERO;
    let count = T::from_usize(batch.len());
    for img in batch {
        let dot = |t: &[T]| -> T { img.global.iter().zip(t).map(|(&f, &v)| T::from_f32(f) * v).sum() };
        let (x, y) = (dot(&bar_n) / tau, dot(&bar_a) / tau);
        let (pn, pa) = scoring::two_way(x, y, T::ONE);
        // −log_softmax[label] = logsumexp − logit[label]; d/dlogit = softmax − onehot.
        let mx = x.max(y);
        let lse = mx + ((x - mx).exp() + (y - mx).exp()).ln();
        let (logit, yn, ya) = if img.label { (y, T::ZERO, T::ONE) } else { (x, T::ONE, T::ZERO) };
        ce += lse - logit;
        let (gn_l, ga_l) = ((pn - yn) / (tau * count), (pa - ya) / (tau * count));
        for ((x, y), &f) in dn.iter_mut().zip(da.iter_mut()).zip(&img.global) {
            *x += gn_l * T::from_f32(f);
            *y += ga_l * T::from_f32(f);
        }
    }
    for (bar, norm, dbar, g) in [(&bar_n, norm_n[0], &dn, gn), (&bar_a, norm_a[0], &da, ga)] {
        let mut dmean = vec![T::ZERO; d];
        normalize_backward(dbar, bar, norm, &mut dmean);
        for row in g.chunks_exact_mut(d) {
            for (v, &x) in row.iter_mut().zip(&dmean) {
                *v += weight * x / T::from_usize(m);
            }
        }
    }
    (ce / count).to_f64()
}

/// Coefficients of the pixel gradients, with the means over pixels and maps folded in.
pub(super) struct PixelScales {
    /// `k_focal / (maps · S²)`.
    focal: f64,
    /// `k_dice_a / maps`.
    dice_a: f64,
    /// `k_dice_n / maps`.
    dice_n: f64,
    gamma: f64,
}

impl PixelScales {
    /// `maps`: masked images × feature layers.
    pub fn new(cfg: &LossConfig, maps: usize, k: Coefficients) -> Self {
        let maps = maps.max(1) as f64;
        let pixels = (cfg.size * cfg.size) as f64;
        PixelScales {
            focal: k.focal / (maps * pixels),
            dice_a: k.dice_abnormal / maps,
            dice_n: k.dice_normal / maps,
            gamma: f64::from(cfg.focal_gamma),
        }
    }
}

/// What the feature maps contribute: raw sums (for the loss values) and the gradient parts.
pub(super) struct PixelPart<T> {
    /// Σ over maps and pixels of the focal loss.
    pub focal_sum: f64,
    /// Σ over maps of the Dice coefficient of `map_a` vs the mask.
    pub dice_abnormal_sum: f64,
    /// Σ over maps of the Dice coefficient of `map_n` vs `1 − mask`.
    pub dice_normal_sum: f64,
    grad: Option<TokenGrad<T>>,
}

impl<T: Real> PixelPart<T> {
    pub fn zero() -> Self {
        PixelPart { focal_sum: 0.0, dice_abnormal_sum: 0.0, dice_normal_sum: 0.0, grad: None }
    }

    pub fn merge(mut self, other: Self) -> Self {
        self.focal_sum += other.focal_sum;
        self.dice_abnormal_sum += other.dice_abnormal_sum;
        self.dice_normal_sum += other.dice_normal_sum;
        self.grad = match (self.grad, other.grad) {
            (Some(mut x), Some(y)) => {
                x.rows.iter_mut().zip(&y.rows).for_each(|(a, &b)| *a += b);
                x.gram.iter_mut().zip(&y.gram).for_each(|(a, &b)| *a += b);
                Some(x)
            }
            (x, y) => x.or(y),
        };
        self
    }

    /// Adds the gradient parts to `gn`, `ga` (w.r.t. the normalised embeddings).
    pub fn add_to(&self, text: &Text<T>, gn: &mut [T], ga: &mut [T]) {
        if let Some(g) = &self.grad {
            g.add_to(text, gn, ga);
        }
    }
}

/// `x^e` for the focal exponent: integer exponents by repeated multiplication (PyTorch's `pow`
/// special-cases 2 and 3 the same way), others by `powf`.
#[derive(Debug, Clone, Copy)]
enum Power {
    Int(u32),
    Real(f64),
}

impl Power {
    fn new(e: f64) -> Self {
        if (0.0..=16.0).contains(&e) && e.fract() == 0.0 {
            Power::Int(e as u32)
        } else {
            Power::Real(e)
        }
    }

    fn of<T: Real>(self, x: T) -> T {
        match self {
            Power::Int(n) => (0..n).fold(T::ONE, |acc, _| acc * x),
            Power::Real(e) => x.powf(T::from_f64(e)),
        }
    }
}

/// One feature map of one image: token probabilities, the S×S map, focal and Dice, and the
/// backward of all of it. `mask`: `[S, S]`.
#[allow(clippy::too_many_arguments)]
pub(super) fn pixel_task<T: Real>(
    patches: &[f32],
    w: &[f32],
    g: usize,
    mask: &[f32],
    text: &Text<T>,
    tau: T,
    cfg: &LossConfig,
    sc: &PixelScales,
) -> PixelPart<T> {
    let s = cfg.size;
    let mix: Mix = cfg.detection.mix;
    let tok = scoring::forward(patches, w, text, tau, mix);
    let t = taps::<T>(g, s);
    let mut rows = vec![T::ZERO; g * s];
    let (mut map_n, mut map_a) = (vec![T::ZERO; s * s], vec![T::ZERO; s * s]);
    upsample(&tok.p_n, g, &t, &mut rows, &mut map_n);
    upsample(&tok.p_a, g, &t, &mut rows, &mut map_a);
    let (lo, hi, smooth) = (T::from_f64(FOCAL_SMOOTH), T::from_f64(1.0 - FOCAL_SMOOTH), T::from_f64(FOCAL_SMOOTH));
    let (gamma, gamma_1) = (Power::new(sc.gamma), Power::new(sc.gamma - 1.0));
    let (mut focal, mut inter_a, mut sum_a, mut inter_n, mut sum_n, mut ones) = (0.0f64, 0.0, 0.0, 0.0, 0.0, 0.0);
    // Pass 1: loss values; map_a and map_n are overwritten by pt and log pt for pass 2.
    for ((mn, ma), &y) in map_n.iter_mut().zip(map_a.iter_mut()).zip(mask) {
        let pos = y > 0.5;
        let (key_n, key_a) = if pos { (lo, hi) } else { (hi, lo) };
        let pt = key_n * *mn + key_a * *ma + smooth;
        let lp = pt.ln();
        focal -= (gamma.of(T::ONE - pt) * lp).to_f64();
        let (xa, xn) = (ma.to_f64(), mn.to_f64());
        sum_a += xa;
        sum_n += xn;
        if pos {
            inter_a += xa;
            ones += 1.0;
        } else {
            inter_n += xn;
        }
        (*ma, *mn) = (pt, lp);
    }
    let zeros = (s * s) as f64 - ones;
    let (num_a, den_a) = (2.0 * inter_a + DICE_SMOOTH, sum_a + ones + DICE_SMOOTH);
    let (num_n, den_n) = (2.0 * inter_n + DICE_SMOOTH, sum_n + zeros + DICE_SMOOTH);
    // d(1 − num/den)/dX_p = −(2 Y_p/den − num/den²), scaled by the mean over maps.
    let da_pos = T::from_f64(-sc.dice_a * (2.0 / den_a - num_a / (den_a * den_a)));
    let da_neg = T::from_f64(sc.dice_a * num_a / (den_a * den_a));
    let dn_pos = T::from_f64(sc.dice_n * num_n / (den_n * den_n));
    let dn_neg = T::from_f64(-sc.dice_n * (2.0 / den_n - num_n / (den_n * den_n)));
    let (kf, g_t) = (T::from_f64(sc.focal), T::from_f64(sc.gamma));
    // Pass 2: gp = dL/dmap_a − dL/dmap_n per pixel, into map_a.
    for ((pt, lp), &y) in map_a.iter_mut().zip(&map_n).zip(mask) {
        let pos = y > 0.5;
        let (key_n, key_a) = if pos { (lo, hi) } else { (hi, lo) };
        let q = T::ONE - *pt;
        // d/dpt of −(1 − pt)^γ log pt.
        let dpt = if sc.gamma == 0.0 { -T::ONE / *pt } else { g_t * gamma_1.of(q) * *lp - gamma.of(q) / *pt };
        let focal_part = kf * dpt * (key_a - key_n);
        *pt = focal_part + if pos { da_pos - dn_pos } else { da_neg - dn_neg };
    }
    let mut gp = vec![T::ZERO; g * g];
    upsample_adjoint(&map_a, g, &t, &mut rows, &mut gp);
    let grad = scoring::backward(patches, w, text, tau, mix, &tok, &gp);
    PixelPart { focal_sum: focal, dice_abnormal_sum: num_a / den_a, dice_normal_sum: num_n / den_n, grad: Some(grad) }
}
