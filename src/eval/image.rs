//! Image-level metrics: exact, from all scores in memory.

use serde::Serialize;

use super::curves::{self, Curves};
use super::metric::Metric;
use super::table::ScoreTable;
use super::MetricError;

/// AUROC, AP and F1-max of scores against binary labels, with their curves.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BinaryMetrics {
    /// scikit-learn `roc_auc_score`.
    pub auroc: Metric,
    /// scikit-learn `average_precision_score` (undefined, not 0, without anomalous samples).
    pub average_precision: Metric,
    /// Max over `precision_recall_curve` of 2PR/(P+R).
    pub f1_max: Metric,
    /// ROC and PR curves for plotting.
    pub curves: Curves,
}

/// Exact AUROC, AP and F1-max of `scores` (higher = more anomalous) against `labels`
/// (`true` = anomalous), as scikit-learn computes them on these f32 scores; accumulation in f64
/// (AUROC's area in integers).
///
/// Without anomalous labels all three are undefined; without normal ones AUROC is, while AP and
/// F1-max are 1 as in scikit-learn. Constant scores are defined (AUROC 0.5, AP = the anomalous
/// fraction).
///
/// # Shapes
/// `scores`, `labels`: `[n]`.
///
/// # Errors
/// [`MetricError::LengthMismatch`] if the lengths differ; [`MetricError::NonFinite`] for a NaN
/// or infinite score.
pub fn image_metrics(scores: &[f32], labels: &[bool]) -> Result<BinaryMetrics, MetricError> {
    if labels.len() != scores.len() {
        return Err(MetricError::LengthMismatch { what: "labels", expected: scores.len(), got: labels.len() });
    }
    if let Some((index, &value)) = scores.iter().enumerate().find(|(_, v)| !v.is_finite()) {
        return Err(MetricError::NonFinite { what: "scores", index, value });
    }
    let mut table = ScoreTable::new(usize::MAX, scores.len());
    for (&s, &l) in scores.iter().zip(labels) {
        table.push(s, u32::from(l));
    }
    table.flush();
    let b = curves::binary(&table);
    Ok(BinaryMetrics { auroc: b.auroc, average_precision: b.average_precision, f1_max: b.f1_max, curves: b.curves })
}
