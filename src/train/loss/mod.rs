//! The training loss of METHOD.md A5 + B8 on cached visual features, and its exact gradient with
//! respect to the text embeddings `t_n`, `t_a` (`[M, D]`, the text encoder's L2-normalised
//! outputs). CLIP is frozen and the transport plan is a constant (B4: no gradient through the
//! solver), so everything differentiable is a small closed form, written out by hand.
//!
//! ```text
//! total = CE + λ_local · (1/L) Σ_layers (Focal + Dice_a + Dice_n) + λ_orth · L_orth
//! ```
//!
//! Each choice mirrors `zqhang/AnomalyCLIP` (line numbers of train.py and loss.py at HEAD 45ed4dd;
//! loss.py is unchanged since the initial commit ff7ca47):
//! - Text features are re-normalised first, `t / |t|` (train.py l.80 normalises the encoder output
//!   the same way). The values do not change (they arrive normalised), but the loss becomes
//!   scale-invariant, so `d_t` is tangent to the sphere and equals autograd through that line.
//! - CE: `F.cross_entropy` of `(⟨f, t̄_n⟩, ⟨f, t̄_a⟩)/τ`, mean over the batch (l.82–84), with
//!   `t̄ = normalize(mean_m t^m)` (METHOD.md B7; `t` itself when M = 1).
//! - Per feature layer the two channels `(p_n, p_a)` of each token (B6, both mixes, as
//!   `tools/tokenclip_reference.py`'s `token_probabilities`) are upsampled bilinearly
//!   (align_corners = False) to S×S (`get_similarity_map`, AnomalyCLIP_lib/model_load.py
//!   l.222–227). The pixel terms are **averaged** over the L feature layers and weighted by
//!   λ_local = 4. AnomalyCLIP sums them over layers (train.py l.97–100): at ff7ca47 with four
//!   layers (6, 12, 18, 24; train.sh) and no weight, since 76b83e1 with `lam = 4` (l.102) and one
//!   layer (train.sh: `--features_list 24`); its README (04.13.2025) says the four old maps were
//!   identical by a bug, so both weigh the top map by 4. With four layers this loss is the
//!   former, with one layer the latter and METHOD.md A5's `4·(Focal + Dice + Dice)`. (The current
//!   train.py run with its four-layer argparse default would be λ_local = 16 here.)
//! - Focal (loss.py l.35–86, `FocalLoss()` defaults: γ = 2, smooth = 1e-5, alpha = 1): one-hot of
//!   the mask clamped to `[smooth/(C−1), 1 − smooth]`, `pt = Σ_c onehot_c·map_c + smooth`,
//!   `−(1 − pt)^γ log pt`, mean over every pixel of every image (with a mask).
//! - Dice (loss.py l.89–106): per image `(2 Σ XY + 1)/(Σ X + Σ Y + 1)`, loss `1 −` its batch mean;
//!   `Dice(map_a, mask) + Dice(map_n, 1 − mask)` (train.py l.99–100).
//! - Masks are thresholded at 0.5 (train.py l.64–66). An image without a mask (`None`) adds no
//!   pixel terms and does not count in their means. AnomalyCLIP instead gives every image a mask:
//!   zeros for normal images and also for anomalous ones whose mask file is missing (dataset.py
//!   l.64–69); pass `Some(zeros)` for normal images to mirror it.
//! - L_orth (B2): mean over ordered pairs m ≠ m' of `⟨t_n^m, t_n^m'⟩² + ⟨t_a^m, t_a^m'⟩²`.

mod assign;
mod check;
mod losses;
mod orth;
mod resize;
mod scoring;
#[cfg(test)]
mod tests;

use rayon::prelude::*;

use crate::clip::config::DetectionConfig;
use crate::Error;

use super::real::Real;

pub use assign::{token_weights, TokenWeights};

/// One training image's cached features and labels.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainImage {
    /// Patch embeddings `[N, D]` (N = grid²) per feature layer, rows L2-normalised.
    pub patches: Vec<Vec<f32>>,
    /// Global embedding `[D]`, L2-normalised.
    pub global: Vec<f32>,
    /// Patch grid side g.
    pub grid: usize,
    /// Whether the image is anomalous.
    pub label: bool,
    /// Binary mask `[S, S]` (values > 0.5 count as anomalous); `None`: no pixel terms.
    pub mask: Option<Vec<f32>>,
}

/// Loss hyperparameters.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LossConfig {
    /// τ, K, ε, Sinkhorn and the mix (σ and the score mode play no part in training).
    pub detection: DetectionConfig,
    /// Map side S (the model's input size).
    pub size: usize,
    /// Weight of the pixel terms, averaged over feature layers (AnomalyCLIP's `lam = 4`).
    pub lambda_local: f32,
    /// Weight of L_orth.
    pub lambda_orth: f32,
    /// Focal γ (AnomalyCLIP: 2).
    pub focal_gamma: f32,
}

impl Default for LossConfig {
    fn default() -> Self {
        LossConfig {
            detection: DetectionConfig::default(),
            size: 518,
            lambda_local: 4.0,
            lambda_orth: 0.1,
            focal_gamma: 2.0,
        }
    }
}

impl LossConfig {
    /// The defaults with these scoring hyperparameters and map side.
    pub fn new(detection: DetectionConfig, size: usize) -> Self {
        LossConfig { detection, size, ..Self::default() }
    }

    /// Sets λ_local.
    pub fn with_lambda_local(mut self, v: f32) -> Self {
        self.lambda_local = v;
        self
    }

    /// Sets λ_orth.
    pub fn with_lambda_orth(mut self, v: f32) -> Self {
        self.lambda_orth = v;
        self
    }

    /// Sets the focal γ.
    pub fn with_focal_gamma(mut self, v: f32) -> Self {
        self.focal_gamma = v;
        self
    }
}

/// The loss and its parts (each unweighted; the pixel terms averaged over feature layers).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LossTerms {
    /// `ce + λ_local·(focal + dice_abnormal + dice_normal) + λ_orth·orth`.
    pub total: f64,
    /// Image cross-entropy, mean over the batch.
    pub ce: f64,
    /// Focal loss (mean over the pixels of the images with masks), mean over layers.
    pub focal: f64,
    /// `Dice(map_a, mask)`, mean over layers.
    pub dice_abnormal: f64,
    /// `Dice(map_n, 1 − mask)`, mean over layers.
    pub dice_normal: f64,
    /// L_orth (0 when M = 1).
    pub orth: f64,
    /// Mean cosine between different subspaces' embeddings, normal and abnormal (0 when M = 1).
    pub mean_offdiag_cosine: f64,
    /// Images that had a mask; 0 means every pixel term is 0 (labels only).
    pub pixel_images: usize,
}

/// Per-term weights; the public entries use `(1, λ_local, λ_local, λ_local, λ_orth)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Coefficients {
    pub ce: f64,
    pub focal: f64,
    pub dice_abnormal: f64,
    pub dice_normal: f64,
    pub orth: f64,
}

impl Coefficients {
    fn of(cfg: &LossConfig) -> Self {
        let l = f64::from(cfg.lambda_local);
        Coefficients { ce: 1.0, focal: l, dice_abnormal: l, dice_normal: l, orth: f64::from(cfg.lambda_orth) }
    }
}

/// The loss and `(d total/d t_n, d total/d t_a)`, each `[M, D]`. The transport plans are solved
/// in f32 from `t_n`, `t_a` ([`token_weights`]) and held constant. The loss re-normalises the
/// rows of `t_n`, `t_a` first, so each gradient row is orthogonal to its embedding row (for unit
/// rows, exactly what autograd gives through the text encoder's final `t / |t|`).
///
/// # Shapes
/// `t_n`, `t_a`: `[m, d]`; per image `patches[l]`: `[grid², d]` (the same layer count for all),
/// `global`: `[d]`, `mask`: `[size, size]`.
///
/// # Errors
/// `InvalidArgument`/`ShapeMismatch` (op `train_loss`) for inconsistent shapes, an empty batch,
/// non-finite text embeddings, M > 64 or hyperparameters out of range.
pub fn loss_and_grad<T: Real>(
    t_n: &[T],
    t_a: &[T],
    m: usize,
    d: usize,
    batch: &[TrainImage],
    cfg: &LossConfig,
) -> Result<(LossTerms, Vec<T>, Vec<T>), Error> {
    let (n32, a32): (Vec<f32>, Vec<f32>) =
        (t_n.iter().map(|v| v.to_f32()).collect(), t_a.iter().map(|v| v.to_f32()).collect());
    let weights = token_weights(&n32, &a32, m, d, batch, &cfg.detection)?;
    loss_and_grad_with_weights(t_n, t_a, m, d, batch, &weights, cfg)
}

/// [`loss_and_grad`] with the token weights given (for gradient checks and fixtures, where the
/// plan must be the same constant across evaluations).
///
/// # Errors
/// As [`loss_and_grad`], and `ShapeMismatch` when `weights` was made for other shapes.
pub fn loss_and_grad_with_weights<T: Real>(
    t_n: &[T],
    t_a: &[T],
    m: usize,
    d: usize,
    batch: &[TrainImage],
    weights: &TokenWeights,
    cfg: &LossConfig,
) -> Result<(LossTerms, Vec<T>, Vec<T>), Error> {
    loss_and_grad_terms(t_n, t_a, m, d, batch, weights, cfg, Coefficients::of(cfg))
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn loss_and_grad_terms<T: Real>(
    t_n: &[T],
    t_a: &[T],
    m: usize,
    d: usize,
    batch: &[TrainImage],
    weights: &TokenWeights,
    cfg: &LossConfig,
    k: Coefficients,
) -> Result<(LossTerms, Vec<T>, Vec<T>), Error> {
    check::text(t_n, t_a, m, d)?;
    check::config(cfg)?;
    check::batch(batch, d, Some(cfg.size))?;
    check::weights(weights, m, batch)?;
    let (un, norm_n) = orth::normalize_rows(t_n, m, d);
    let (ua, norm_a) = orth::normalize_rows(t_a, m, d);
    let mut terms = LossTerms::default();
    let (mut gn, mut ga) = (vec![T::ZERO; m * d], vec![T::ZERO; m * d]);
    let tau = T::from_f32(cfg.detection.temperature);
    terms.ce = losses::image_loss(batch, &un, &ua, m, d, tau, T::from_f64(k.ce), &mut gn, &mut ga);
    let o = orth::orthogonality(&un, &ua, m, d, T::from_f64(k.orth), &mut gn, &mut ga);
    (terms.orth, terms.mean_offdiag_cosine) = (o.loss, o.mean_cosine);
    let text = scoring::Text::new(&un, &ua, m, d);
    let masked: Vec<usize> = (0..batch.len()).filter(|&b| batch[b].mask.is_some()).collect();
    terms.pixel_images = masked.len();
    let layers = batch[0].patches.len();
    let scales = losses::PixelScales::new(cfg, masked.len() * layers, k);
    let tasks: Vec<(usize, usize)> = masked.iter().flat_map(|&b| (0..layers).map(move |l| (b, l))).collect();
    let pixel = tasks
        .par_iter()
        .map(|&(b, l)| {
            let img = &batch[b];
            let mask = img.mask.as_deref().unwrap_or_default();
            let w = &weights.weights[b][l];
            losses::pixel_task(&img.patches[l], w, img.grid, mask, &text, tau, cfg, &scales)
        })
        .reduce(losses::PixelPart::zero, losses::PixelPart::merge);
    pixel.add_to(&text, &mut gn, &mut ga);
    if !masked.is_empty() {
        let maps = (masked.len() * layers) as f64;
        terms.focal = pixel.focal_sum / (maps * (cfg.size * cfg.size) as f64);
        terms.dice_abnormal = 1.0 - pixel.dice_abnormal_sum / maps;
        terms.dice_normal = 1.0 - pixel.dice_normal_sum / maps;
    }
    terms.total = k.ce * terms.ce
        + k.focal * terms.focal
        + k.dice_abnormal * terms.dice_abnormal
        + k.dice_normal * terms.dice_normal
        + k.orth * terms.orth;
    Ok((terms, orth::project_back(&gn, &un, &norm_n, d), orth::project_back(&ga, &ua, &norm_a, d)))
}
