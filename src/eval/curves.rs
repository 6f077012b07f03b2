//! AUROC, AP, F1-max and the ROC / PR curves from a score table, as scikit-learn computes them.
//!
//! Walking the groups from the highest score down gives, after each group, the true and false
//! positives of the threshold "score ≥ that group" (`_binary_clf_curve`: one point per distinct
//! score, so ties move both counts at once). Then:
//! - AUROC = trapezoid area under (FPR, TPR) from (0, 0): Σ Δfp · (tp_prev + tp) / 2 / (P·N),
//!   summed exactly in integers.
//! - AP = Σ (R_k − R_{k−1}) · P_k over those points, no interpolation.
//! - F1 at a point = 2PR/(P+R) = 2·tp / (P + tp + fp); F1-max is the maximum (the final point of
//!   `precision_recall_curve`, recall 0, gives 0).

use serde::Serialize;

use super::metric::{Metric, Undefined};
use super::table::ScoreTable;

/// The most points a returned curve has (longer curves are subsampled evenly, ends kept).
pub const MAX_CURVE_POINTS: usize = 1000;

/// A point of the ROC curve.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RocPoint {
    /// The threshold (score ≥ it is anomalous); `None` for the start point above every score.
    /// Once the table is coarsened, the smallest score of the group.
    pub threshold: Option<f32>,
    /// False-positive rate.
    pub fpr: f64,
    /// True-positive rate.
    pub tpr: f64,
}

/// A point of the precision-recall curve.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct PrPoint {
    /// As [`RocPoint::threshold`].
    pub threshold: Option<f32>,
    /// Recall.
    pub recall: f64,
    /// Precision (1 at the start point, as scikit-learn's last point).
    pub precision: f64,
}

/// ROC and PR curves for plotting, from the highest threshold down, at most
/// [`MAX_CURVE_POINTS`] each; empty where the curve is undefined (ROC without both classes, PR
/// without anomalous samples).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Curves {
    /// (FPR, TPR) points.
    pub roc: Vec<RocPoint>,
    /// (recall, precision) points.
    pub pr: Vec<PrPoint>,
}

/// AUROC, AP and F1-max of a table, their curves, and bounds on their error when the table
/// was coarsened (all 0 when exact).
pub(crate) struct Binary {
    pub auroc: Metric,
    pub average_precision: Metric,
    pub f1_max: Metric,
    pub curves: Curves,
    pub auroc_bound: f64,
    pub ap_bound: f64,
    pub f1_bound: f64,
}

/// Computes [`Binary`] from `t` (already flushed).
pub(crate) fn binary(t: &ScoreTable) -> Binary {
    let (p, n) = (t.pos, t.neg);
    let (pf, nf) = (p as f64, n as f64);
    let (mut tp, mut fp) = (0u64, 0u64);
    let mut area2: u128 = 0;
    let (mut ap, mut ap_lo, mut ap_hi) = (0.0f64, 0.0f64, 0.0f64);
    let (mut f1, mut f1_hi) = (0.0f64, 0.0f64);
    let mut pairs_mixed: u128 = 0;
    let mut roc = vec![RocPoint { threshold: None, fpr: 0.0, tpr: 0.0 }];
    let mut pr = vec![PrPoint { threshold: None, recall: 0.0, precision: 1.0 }];
    for g in t.groups.iter().rev() {
        let (t0, f0) = (tp, fp);
        tp += g.pos;
        fp += g.neg;
        area2 = area2.saturating_add(u128::from(g.neg) * (2 * u128::from(t0) + u128::from(g.pos)));
        let (tpf, fpf) = (tp as f64, fp as f64);
        // Groups without anomalous samples add nothing (and would be 0/0 at the top).
        let step = if g.pos == 0 { 0.0 } else { g.pos as f64 * tpf / (tpf + fpf) };
        ap += step;
        f1 = f1.max(2.0 * tpf / (pf + tpf + fpf));
        if g.mixed() && g.pos > 0 {
            pairs_mixed = pairs_mixed.saturating_add(u128::from(g.neg) * u128::from(g.pos));
            let (t0f, f0f) = (t0 as f64, f0 as f64);
            // Inside the group the j-th anomalous sample's precision lies between
            // (T+j)/(T+j+F+n) (all normal ones first) and (T+a)/(T+a+F) (all anomalous first).
            let worst: f64 = (1..=g.pos).map(|j| (t0f + j as f64) / (t0f + j as f64 + f0f + g.neg as f64)).sum();
            ap_lo += worst - step;
            ap_hi += g.pos as f64 * tpf / (tpf + f0f) - step;
            f1_hi = f1_hi.max(2.0 * tpf / (pf + tpf + f0f));
        }
        let threshold = Some(g.lo());
        if p > 0 && n > 0 {
            roc.push(RocPoint { threshold, fpr: fpf / nf, tpr: tpf / pf });
        }
        if p > 0 {
            pr.push(PrPoint { threshold, recall: tpf / pf, precision: tpf / (tpf + fpf) });
        }
    }
    let empty = p == 0 && n == 0;
    let none_pos = if empty { Undefined::NoSamples } else { Undefined::NoAnomalous };
    let auroc = if p == 0 {
        Metric::Undefined(none_pos)
    } else if n == 0 {
        Metric::Undefined(Undefined::NoNormal)
    } else {
        Metric::Value(area2 as f64 / (2.0 * pf * nf))
    };
    let (average_precision, f1_max) = if p == 0 {
        (Metric::Undefined(none_pos), Metric::Undefined(none_pos))
    } else {
        (Metric::Value(ap / pf), Metric::Value(f1))
    };
    let auroc_bound = if p > 0 && n > 0 { pairs_mixed as f64 / (2.0 * pf * nf) } else { 0.0 };
    let ap_bound = if p > 0 { ap_lo.abs().max(ap_hi.abs()) / pf } else { 0.0 };
    let f1_bound = (f1_hi - f1).max(0.0);
    if p == 0 || n == 0 {
        roc.clear();
    }
    if p == 0 {
        pr.clear();
    }
    let curves = Curves { roc: downsample(roc, MAX_CURVE_POINTS), pr: downsample(pr, MAX_CURVE_POINTS) };
    Binary { auroc, average_precision, f1_max, curves, auroc_bound, ap_bound, f1_bound }
}

/// Keeps at most `max` evenly spaced points of `v`, first and last included.
pub(crate) fn downsample<T: Copy>(v: Vec<T>, max: usize) -> Vec<T> {
    if v.len() <= max || max < 2 {
        return v;
    }
    let last = v.len() - 1;
    (0..max).map(|i| v[(i * last + (max - 1) / 2) / (max - 1)]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downsample_keeps_ends_and_bound() {
        let v: Vec<usize> = (0..5000).collect();
        let d = downsample(v, 1000);
        assert_eq!(d.len(), 1000);
        assert_eq!((d[0], d[999]), (0, 4999));
        assert!(d.windows(2).all(|w| w[0] < w[1]));
    }
}
