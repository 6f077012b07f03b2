//! Input validation of the loss entry points (STYLE.md §5: validate once at the edge, never panic
//! on input).

use crate::backend::check::MAX_SUBSPACES;
use crate::backend::BackendError;
use crate::clip::config::DetectionConfig;
use crate::train::real::Real;
use crate::Error;

use super::{LossConfig, TokenWeights, TrainImage};

const OP: &str = "train_loss";

fn invalid(message: String) -> Error {
    BackendError::InvalidArgument { op: OP, message }.into()
}

fn shape(operand: &'static str, expected: String, got: usize) -> Error {
    BackendError::ShapeMismatch { op: OP, operand, expected, got: vec![got] }.into()
}

/// `t_n`, `t_a` are finite `[m, d]` with 1 ≤ m ≤ 64.
pub(super) fn text<T: Real>(t_n: &[T], t_a: &[T], m: usize, d: usize) -> Result<(), Error> {
    if m == 0 || d == 0 || m > MAX_SUBSPACES {
        return Err(invalid(format!("need 1 ≤ M ≤ {MAX_SUBSPACES} and D ≥ 1, got M = {m}, D = {d}")));
    }
    for (name, t) in [("t_n", t_n), ("t_a", t_a)] {
        if t.len() != m * d {
            return Err(shape(name, format!("[{m}, {d}] = {} values", m * d), t.len()));
        }
    }
    if !t_n.iter().chain(t_a).all(|v| v.is_finite()) {
        return Err(invalid(
            "text embeddings hold non-finite values (did training diverge? lower the learning rate)".into(),
        ));
    }
    Ok(())
}

/// The transport and temperature hyperparameters.
pub(super) fn detection(det: &DetectionConfig) -> Result<(), Error> {
    let ok = det.temperature.is_finite()
        && det.temperature > 0.0
        && det.top_k >= 1
        && det.epsilon.is_finite()
        && det.epsilon > 0.0
        && det.sinkhorn_iters >= 1
        && det.sinkhorn_tol.is_finite();
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "scoring hyperparameters out of range (need τ > 0, K ≥ 1, ε > 0, iterations ≥ 1): {det:?}"
        )))
    }
}

/// Everything in `cfg`.
pub(super) fn config(cfg: &LossConfig) -> Result<(), Error> {
    detection(&cfg.detection)?;
    let ok = cfg.size >= 1
        && cfg.size.checked_mul(cfg.size).is_some()
        && cfg.lambda_local.is_finite()
        && cfg.lambda_orth.is_finite()
        && cfg.focal_gamma.is_finite()
        && cfg.focal_gamma >= 0.0;
    if ok {
        Ok(())
    } else {
        Err(invalid(format!("loss hyperparameters out of range (need S ≥ 1, finite λs, finite γ ≥ 0): {cfg:?}")))
    }
}

/// A non-empty batch, every image with the same number of `[grid², d]` layers, a `[d]` global
/// embedding and, when `size` is given, `[size, size]` masks.
pub(super) fn batch(batch: &[TrainImage], d: usize, size: Option<usize>) -> Result<(), Error> {
    let Some(first) = batch.first() else {
        return Err(invalid("the batch is empty".into()));
    };
    let layers = first.patches.len();
    if layers == 0 {
        return Err(invalid("images carry no feature layers".into()));
    }
    for (b, img) in batch.iter().enumerate() {
        let n = img.grid.checked_mul(img.grid).filter(|&n| n > 0);
        let Some(nd) = n.and_then(|n| n.checked_mul(d)) else {
            return Err(invalid(format!("image {b}: patch grid {} is not usable", img.grid)));
        };
        if img.patches.len() != layers {
            return Err(shape(
                "patches",
                format!("image {b}: {layers} feature layers (as image 0)"),
                img.patches.len(),
            ));
        }
        if let Some(p) = img.patches.iter().find(|p| p.len() != nd) {
            return Err(shape("patches", format!("image {b}: [{}², {d}] = {nd} values per layer", img.grid), p.len()));
        }
        if img.global.len() != d {
            return Err(shape("global", format!("image {b}: [{d}]"), img.global.len()));
        }
        if let (Some(mask), Some(s)) = (&img.mask, size) {
            if mask.len() != s * s {
                return Err(shape("mask", format!("image {b}: [{s}, {s}]"), mask.len()));
            }
        }
    }
    Ok(())
}

/// `w` fits `batch`: one `[N, M]` per layer of every masked image.
pub(super) fn weights(w: &TokenWeights, m: usize, batch: &[TrainImage]) -> Result<(), Error> {
    if w.subspaces != m || w.weights.len() != batch.len() {
        return Err(shape("weights", format!("made for M = {m} and {} images", batch.len()), w.weights.len()));
    }
    for (b, (img, per)) in batch.iter().zip(&w.weights).enumerate() {
        if img.mask.is_none() {
            continue;
        }
        if per.len() != img.patches.len() {
            return Err(shape("weights", format!("image {b}: one per feature layer"), per.len()));
        }
        let nm = img.grid * img.grid * m;
        if let Some(bad) = per.iter().find(|x| x.len() != nm) {
            return Err(shape("weights", format!("image {b}: [N, M] = {nm} values"), bad.len()));
        }
    }
    Ok(())
}
