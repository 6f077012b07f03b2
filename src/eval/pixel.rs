//! Pixel-level metrics in bounded memory (see the `eval` module doc for the method and bound).

use serde::Serialize;

use super::components::{checked_pixels, label_components};
use super::curves::{self, Curves};
use super::metric::Metric;
use super::table::ScoreTable;
use super::{aupro, MetricError};

/// Default most groups a [`PixelAccumulator`] keeps before it coarsens (2^20).
pub const DEFAULT_CAPACITY: usize = 1 << 20;

/// Default most pixels staged between merges (2^20, about four 518×518 maps).
pub const DEFAULT_STAGING: usize = 1 << 20;

/// Bounds on |streaming − exact| per metric, rigorous, from the table; all 0 when
/// [`Approximation::exact`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct ErrorBounds {
    /// Pixel AUROC.
    pub auroc: f64,
    /// Pixel average precision.
    pub average_precision: f64,
    /// Pixel F1-max (the exact value is at least the streaming one, and at most this above).
    pub f1_max: f64,
    /// Exact AUPRO (the sampled one has no bound).
    pub aupro: f64,
}

impl ErrorBounds {
    /// The largest of the four bounds.
    pub fn max(&self) -> f64 {
        self.auroc.max(self.average_precision).max(self.f1_max).max(self.aupro)
    }
}

/// How the pixel metrics were computed.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Approximation {
    /// True when every group is one distinct score: the metrics equal the all-in-memory ones.
    pub exact: bool,
    /// Low key bits dropped to stay within capacity (0: none).
    pub dropped_bits: u32,
    /// Groups in the final table.
    pub groups: usize,
    /// Bounds on the error of each metric.
    pub bounds: ErrorBounds,
}

/// Pixel metrics of one class.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PixelMetrics {
    /// AUROC over all pixels.
    pub auroc: Metric,
    /// Average precision over all pixels.
    pub average_precision: Metric,
    /// F1-max over all pixels.
    pub f1_max: Metric,
    /// Exact AUPRO (every distinct threshold, to FPR 0.3, divided by 0.3).
    pub aupro: Metric,
    /// AnomalyCLIP's AUPRO (200 thresholds, FPR < 0.3 min-max rescaled).
    pub aupro_sampled: Metric,
    /// ROC and PR curves for plotting.
    pub curves: Curves,
    /// Normal pixels.
    pub normal_pixels: u64,
    /// Anomalous pixels.
    pub anomalous_pixels: u64,
    /// Connected components of all masks.
    pub regions: u64,
    /// Exact or not, and error bounds.
    pub approximation: Approximation,
}

/// Streams (map, mask) pairs of one class and computes the pixel metrics in bounded memory.
#[derive(Clone, Debug)]
pub struct PixelAccumulator {
    table: ScoreTable,
}

impl Default for PixelAccumulator {
    fn default() -> Self {
        Self::new()
    }
}

impl PixelAccumulator {
    /// An accumulator with [`DEFAULT_CAPACITY`] groups and [`DEFAULT_STAGING`] pixels staged:
    /// [`Self::memory_bound_bytes`] = 72 MiB.
    pub fn new() -> Self {
        Self::with_capacity(DEFAULT_CAPACITY, DEFAULT_STAGING)
    }

    /// An accumulator keeping at most `groups` groups (≥ 1) and staging `staging` pixels (≥ 1).
    pub fn with_capacity(groups: usize, staging: usize) -> Self {
        PixelAccumulator { table: ScoreTable::new(groups, staging) }
    }

    /// An accumulator that never coarsens: exact, memory grows with the distinct scores.
    pub fn exact() -> Self {
        Self::with_capacity(usize::MAX, DEFAULT_STAGING)
    }

    /// The most bytes the table and staging buffer take (the image being added needs 4 more
    /// bytes per pixel for its component labels).
    pub fn memory_bound_bytes(&self) -> usize {
        self.table.memory_bound_bytes()
    }

    /// Adds one image's anomaly map and mask. On error nothing is added.
    ///
    /// # Shapes
    /// `map`, `mask`: `[height, width]` row-major; `mask` true = anomalous.
    ///
    /// # Errors
    /// [`MetricError::LengthMismatch`] if a length is not `height * width`;
    /// [`MetricError::NonFinite`] for a NaN or infinite score; [`MetricError::ImageTooLarge`]
    /// past `u32::MAX` pixels.
    pub fn add(&mut self, map: &[f32], mask: &[bool], height: usize, width: usize) -> Result<(), MetricError> {
        let n = checked_pixels(height, width)?;
        if map.len() != n {
            return Err(MetricError::LengthMismatch { what: "anomaly map", expected: n, got: map.len() });
        }
        if let Some((index, &value)) = map.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(MetricError::NonFinite { what: "anomaly map", index, value });
        }
        let comps = label_components(mask, height, width)?;
        let sizes = comps.sizes();
        for (&score, &label) in map.iter().zip(comps.labels()) {
            let size = if label == 0 { 0 } else { sizes[label as usize - 1] };
            self.table.push(score, size);
        }
        self.table.components += comps.count() as u64;
        Ok(())
    }

    /// Computes the pixel metrics.
    pub fn finish(mut self) -> PixelMetrics {
        self.table.flush();
        let t = &self.table;
        let b = curves::binary(t);
        let (aupro, aupro_bound) = aupro::exact(t);
        let exact = t.groups.iter().all(|g| !g.mixed());
        PixelMetrics {
            auroc: b.auroc,
            average_precision: b.average_precision,
            f1_max: b.f1_max,
            aupro,
            aupro_sampled: aupro::sampled(t),
            curves: b.curves,
            normal_pixels: t.neg,
            anomalous_pixels: t.pos,
            regions: t.components,
            approximation: Approximation {
                exact,
                dropped_bits: t.shift,
                groups: t.groups.len(),
                bounds: ErrorBounds {
                    auroc: b.auroc_bound,
                    average_precision: b.ap_bound,
                    f1_max: b.f1_bound,
                    aupro: aupro_bound,
                },
            },
        }
    }
}

/// One image for [`pixel_metrics_exact`].
#[derive(Clone, Copy, Debug)]
pub struct PixelImage<'a> {
    /// Anomaly map, `[height, width]` row-major.
    pub map: &'a [f32],
    /// Mask, same shape, true = anomalous.
    pub mask: &'a [bool],
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

/// Exact pixel metrics of small inputs, all in memory (the oracle of the streaming form).
///
/// # Errors
/// As [`PixelAccumulator::add`].
pub fn pixel_metrics_exact(images: &[PixelImage<'_>]) -> Result<PixelMetrics, MetricError> {
    let mut acc = PixelAccumulator::exact();
    for im in images {
        acc.add(im.map, im.mask, im.height, im.width)?;
    }
    Ok(acc.finish())
}
