//! AUPRO (METHOD.md D) from a pixel score table, two ways.
//!
//! PRO at a threshold = the mean over all connected components of all masks (pooled over the
//! images) of the fraction of the component above the threshold = (Σ over anomalous pixels above
//! it of 1/|their component|) / K. The table's groups carry exactly that sum, so no component is
//! kept once its image has been added. FPR = normal pixels above / normal pixels.
//!
//! - [`exact`]: every distinct score is a threshold (score ≥ t); the piecewise-linear curve from
//!   (0, 0) is integrated up to FPR 0.3, interpolated linearly at 0.3, and divided by 0.3: the
//!   MVTec AD evaluation's definition (anomalib computes the same curve, resampled per region).
//! - [`sampled`]: AnomalyCLIP `metrics.py::cal_pro_score` (from cflow-ad), step by step:
//!   `delta = (max - min) / 200` in f32; thresholds `np.arange(min, max, delta)`, which numpy ≥ 2
//!   builds in f64 as `min + i * (f32(min + delta) - min)` with length `ceil(f32((max - min) /
//!   delta))`; a pixel counts when `score > th` (compared in f64); keep the points with FPR < 0.3
//!   (strict); min-max rescale their FPRs to [0, 1]; `sklearn.metrics.auc` (trapezoid).

use super::metric::{Metric, Undefined};
use super::table::ScoreTable;
use super::{AUPRO_FPR_LIMIT, AUPRO_SAMPLED_STEPS};

/// Why AUPRO is undefined, if it is: no component (or no pixel), or no normal pixel.
fn undefined(t: &ScoreTable) -> Option<Undefined> {
    if t.pos == 0 && t.neg == 0 {
        Some(Undefined::NoSamples)
    } else if t.components == 0 {
        Some(Undefined::NoAnomalous)
    } else if t.neg == 0 {
        Some(Undefined::NoNormal)
    } else {
        None
    }
}

/// The exact AUPRO and a bound on its error when the table was coarsened (0 when exact).
pub(crate) fn exact(t: &ScoreTable) -> (Metric, f64) {
    if let Some(r) = undefined(t) {
        return (Metric::Undefined(r), 0.0);
    }
    let limit = AUPRO_FPR_LIMIT;
    let (nf, kf) = (t.neg as f64, t.components as f64);
    let (mut fp, mut w) = (0u64, 0.0f64);
    let (mut x0, mut y0) = (0.0f64, 0.0f64);
    let (mut area, mut bound) = (0.0f64, 0.0f64);
    for g in t.groups.iter().rev() {
        fp += g.neg;
        w += g.weight;
        let (x1, y1) = (fp as f64 / nf, w / kf);
        if x1 <= limit {
            area += (x1 - x0) * (y0 + y1) / 2.0;
            if g.mixed() {
                // A monotone curve inside the box [x0, x1] × [y0, y1]: area within ±Δx·Δy/2.
                bound += (x1 - x0) * (y1 - y0) / 2.0;
            }
            if x1 == limit {
                break;
            }
        } else {
            let y_lim = y0 + (y1 - y0) * (limit - x0) / (x1 - x0);
            area += (limit - x0) * (y0 + y_lim) / 2.0;
            if g.mixed() {
                bound += (limit - x0) * (y1 - y0);
            }
            break;
        }
        x0 = x1;
        y0 = y1;
    }
    (Metric::Value(area / limit), bound / limit)
}

/// AnomalyCLIP's 200-threshold AUPRO. On a coarsened table a threshold inside a mixed group
/// counts the part of it above by linear interpolation between its smallest and largest score.
pub(crate) fn sampled(t: &ScoreTable) -> Metric {
    if let Some(r) = undefined(t) {
        return Metric::Undefined(r);
    }
    let range = t.max - t.min;
    if !range.is_finite() {
        return Metric::Undefined(Undefined::RangeOverflow);
    }
    let delta = range / f32::from(AUPRO_SAMPLED_STEPS);
    if delta <= 0.0 {
        return Metric::Undefined(Undefined::ConstantScores);
    }
    let count = (range / delta).ceil() as usize;
    let start = f64::from(t.min);
    let second = f64::from(t.min + delta);
    let step = second - start;
    let (nf, kf) = (t.neg as f64, t.components as f64);
    let total_w: f64 = t.groups.iter().map(|g| g.weight).sum();
    let (mut below_neg, mut below_w, mut j) = (0u64, 0.0f64, 0usize);
    let mut points: Vec<(f64, f64)> = Vec::with_capacity(count);
    for i in 0..count {
        let th = match i {
            0 => start,
            1 => second,
            _ => start + i as f64 * step,
        };
        while j < t.groups.len() && f64::from(t.groups[j].hi()) <= th {
            below_neg += t.groups[j].neg;
            below_w += t.groups[j].weight;
            j += 1;
        }
        let mut fp = (t.neg - below_neg) as f64;
        let mut w = total_w - below_w;
        if let Some(g) = t.groups.get(j).filter(|g| f64::from(g.lo()) <= th) {
            let frac_below = (th - f64::from(g.lo())) / (f64::from(g.hi()) - f64::from(g.lo()));
            fp -= frac_below * g.neg as f64;
            w -= frac_below * g.weight;
        }
        let fpr = fp / nf;
        if fpr < AUPRO_FPR_LIMIT {
            points.push((fpr, w / kf));
        }
    }
    let (lo, hi) = points.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), p| (l.min(p.0), h.max(p.0)));
    if points.len() < 2 || lo == hi {
        return Metric::Undefined(Undefined::TooFewPoints);
    }
    let scale = hi - lo;
    // FPR falls as the threshold rises, so sklearn's `auc` takes direction −1.
    let area: f64 =
        points.windows(2).map(|p| ((p[0].0 - lo) / scale - (p[1].0 - lo) / scale) * (p[0].1 + p[1].1) / 2.0).sum();
    Metric::Value(area)
}
