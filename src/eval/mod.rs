//! Evaluation (METHOD.md D): the papers' metrics.
//!
//! - Image level: [`image_metrics`] gives AUROC, AP and F1-max of per-image scores, exactly as
//!   scikit-learn's `roc_auc_score`, `average_precision_score` and the maximum of 2PR/(P+R) over
//!   `precision_recall_curve` (ties handled as sklearn: one threshold per distinct score).
//! - Pixel level: [`PixelAccumulator`] takes one (map, mask) pair at a time and keeps a bounded
//!   histogram, so a whole dataset never sits in memory; [`PixelAccumulator::finish`] gives pixel
//!   AUROC, AP, F1-max and AUPRO two ways ([`PixelMetrics::aupro`]: exact, and
//!   [`PixelMetrics::aupro_sampled`]: the 200 thresholds of AnomalyCLIP's `cal_pro_score`).
//!   [`pixel_metrics_exact`] is the all-in-memory oracle for small inputs.
//! - Per class: [`ClassMetrics`] (seven [`Metric`]s); [`mean_over_classes`] skips undefined ones
//!   and counts them. A metric is never NaN: it is a value or [`Undefined`] with a reason.
//!
//! # How the pixel metrics stay bounded, and how close they are
//!
//! Every score is mapped to a 32-bit key that orders like the float (sign-flipped IEEE bits,
//! `-0.0` folded into `+0.0`), so ties are exactly float equality, as in scikit-learn. The
//! accumulator keeps a sorted table of groups (32 bytes each): smallest and largest key, normal
//! count, anomalous count, and the sum of `1/|component|` over its anomalous pixels, which is all
//! AUPRO needs (PRO above a threshold = that sum above it / the number of components), so no
//! component outlives its image. Incoming pixels are staged (8 bytes each: key and component
//! size), sorted and merged into the table in place.
//!
//! While the table has at most `capacity` groups (default 2^20) nothing is approximated: one group
//! per distinct score, and every metric equals the all-in-memory one. Past that, keys drop their
//! lowest bit (adjacent keys merge, repeated until it fits): a fixed, data-independent
//! partition, relative width 2^(b−23) of the score's binade after b dropped bits. Peak memory is
//! [`PixelAccumulator::memory_bound_bytes`] = `(capacity + staging) * 32 + staging * 8` bytes,
//! 72 MiB with the defaults, plus 4 bytes per pixel of the image being added (its component
//! labels) and the flood-fill stack, whatever the number of images.
//!
//! Counts at group boundaries stay exact, so the error comes only from the unknown order inside
//! groups holding several scores, and [`Approximation::bounds`] gives a rigorous bound per metric
//! from the table: AUROC `Σ n_g·a_g / 2PN`; AP and F1-max from the best and worst order inside
//! each group; exact AUPRO from the box each group's curve piece lies in. The sampled AUPRO has
//! no bound (a threshold inside a group counts it by linear interpolation); its measured error is
//! below the others'. Measured on 2^20 pixels whose scores differ only in their low 20 bits (the
//! golden `pix_low_bits_1m` case): exact with the defaults; forced to 2^16 groups, |error| ≤
//! 1.2e-5 (bounds ≤ 3.3e-5).
//!
//! Mirrors: scikit-learn 1.x `sklearn/metrics/_ranking.py` (`_binary_clf_curve`, `roc_curve`,
//! `precision_recall_curve`, `average_precision_score`); AnomalyCLIP `metrics.py::cal_pro_score`
//! (zqhang/AnomalyCLIP); the MVTec AD evaluation's PRO integration; `skimage.measure.label`'s
//! default 2-D connectivity (8-neighbours).

mod aupro;
#[cfg(not(target_arch = "wasm32"))]
pub mod cache;
mod components;
mod curves;
pub mod dataset;
#[cfg(not(target_arch = "wasm32"))]
pub mod evaluate;
mod image;
pub mod mask;
mod metric;
#[cfg(not(target_arch = "wasm32"))]
pub mod partial;
mod pixel;
pub mod plots;
pub mod report;
mod table;

pub use components::{label_components, Components};
pub use curves::{Curves, PrPoint, RocPoint, MAX_CURVE_POINTS};
pub use image::{image_metrics, BinaryMetrics};
pub use metric::{mean_over_classes, AuproMode, ClassMetrics, MeanMetric, MeanMetrics, Metric, Undefined};
pub use pixel::{
    pixel_metrics_exact, Approximation, ErrorBounds, PixelAccumulator, PixelImage, PixelMetrics, DEFAULT_CAPACITY,
    DEFAULT_STAGING,
};

/// The FPR up to which AUPRO integrates (METHOD.md D).
pub const AUPRO_FPR_LIMIT: f64 = 0.3;

/// The number of threshold steps of the reference (sampled) AUPRO.
pub const AUPRO_SAMPLED_STEPS: u16 = 200;

/// Errors of the metric code: inputs of the wrong size or with non-finite scores.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricError {
    /// Two inputs that must match in length do not.
    #[error("{what}: expected {expected} values, got {got}")]
    LengthMismatch {
        /// Which input.
        what: &'static str,
        /// The length it must have.
        expected: usize,
        /// The length it has.
        got: usize,
    },
    /// A score is NaN or infinite (scikit-learn rejects these too).
    #[error("{what}: value {index} is {value}; scores must be finite")]
    NonFinite {
        /// Which input.
        what: &'static str,
        /// Its index.
        index: usize,
        /// The value.
        value: f32,
    },
    /// An image has more pixels than one component label (u32) can count.
    #[error("image of {height}x{width} pixels is too large: at most {limit} pixels per image")]
    ImageTooLarge {
        /// Rows.
        height: usize,
        /// Columns.
        width: usize,
        /// The most pixels one image may have.
        limit: u64,
    },
}
