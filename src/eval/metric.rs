//! One metric value or the reason it is undefined; per-class results and their mean.

use std::fmt;

use serde::Serialize;

use super::image::BinaryMetrics;
use super::pixel::PixelMetrics;

/// Why a metric has no value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Undefined {
    /// There were no samples at all.
    NoSamples,
    /// No anomalous sample (image label or mask pixel): recall is 0/0. scikit-learn returns nan
    /// for AUROC and, with a warning, 0 for AP.
    NoAnomalous,
    /// No normal sample: the false-positive rate is 0/0 (scikit-learn returns nan for AUROC).
    NoNormal,
    /// Sampled AUPRO only: the scores are all equal, so the reference's threshold step is 0.
    ConstantScores,
    /// Sampled AUPRO only: `max - min` overflows f32, so the reference cannot build thresholds.
    RangeOverflow,
    /// Sampled AUPRO only: fewer than two sampled thresholds have FPR < 0.3, or they all have
    /// the same FPR, so the reference's min-max rescaling or `auc` fails.
    TooFewPoints,
    /// The metric was not evaluated (e.g. pixel metrics of a class without masks).
    NotEvaluated,
    /// Mean over classes: no class had a value.
    NoDefinedClass,
}

impl fmt::Display for Undefined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Undefined::NoSamples => "no samples",
            Undefined::NoAnomalous => "no anomalous samples",
            Undefined::NoNormal => "no normal samples",
            Undefined::ConstantScores => "constant scores",
            Undefined::RangeOverflow => "score range overflows f32",
            Undefined::TooFewPoints => "fewer than two distinct sampled FPRs below 0.3",
            Undefined::NotEvaluated => "not evaluated",
            Undefined::NoDefinedClass => "no class with a value",
        })
    }
}

/// A metric: a value in [0, 1] (a fraction, not ×100) or undefined with a reason. Never NaN.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// The value, as a fraction.
    Value(f64),
    /// Why there is none.
    Undefined(Undefined),
}

impl Metric {
    /// The value, if defined.
    pub fn value(&self) -> Option<f64> {
        match *self {
            Metric::Value(v) => Some(v),
            Metric::Undefined(_) => None,
        }
    }

    /// The reason, if undefined.
    pub fn undefined(&self) -> Option<Undefined> {
        match *self {
            Metric::Value(_) => None,
            Metric::Undefined(r) => Some(r),
        }
    }

    /// ×100 with one decimal, as the papers' tables ("91.5"), or "n/a" when undefined.
    pub fn percent(&self) -> String {
        match *self {
            Metric::Value(v) => format!("{:.1}", v * 100.0),
            Metric::Undefined(_) => "n/a".to_owned(),
        }
    }
}

impl fmt::Display for Metric {
    /// As [`Metric::percent`], with the reason after "n/a".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::Value(_) => f.write_str(&self.percent()),
            Metric::Undefined(r) => write!(f, "n/a ({r})"),
        }
    }
}

/// Which AUPRO a [`ClassMetrics`] reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuproMode {
    /// 200 thresholds, FPR < 0.3, min-max rescaled: AnomalyCLIP's `cal_pro_score`, so the
    /// numbers compare with the published tables.
    #[default]
    Sampled,
    /// Every distinct score a threshold, integrated to FPR 0.3 and divided by 0.3 (the MVTec AD
    /// evaluation's definition; anomalib approximates it per region).
    Exact,
}

/// The seven metrics of one class, as fractions.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassMetrics {
    /// The class (object category) name.
    pub class: String,
    /// Image AUROC.
    pub image_auroc: Metric,
    /// Image average precision.
    pub image_ap: Metric,
    /// Image F1-max.
    pub image_f1_max: Metric,
    /// Pixel AUROC.
    pub pixel_auroc: Metric,
    /// Pixel average precision.
    pub pixel_ap: Metric,
    /// Pixel F1-max.
    pub pixel_f1_max: Metric,
    /// Pixel AUPRO, of the kind named by `aupro_mode`.
    pub pixel_aupro: Metric,
    /// Which AUPRO `pixel_aupro` is.
    pub aupro_mode: AuproMode,
}

impl ClassMetrics {
    /// Collects one class's results; without `pixel` (no masks) the pixel metrics are
    /// [`Undefined::NotEvaluated`].
    pub fn new(class: impl Into<String>, image: &BinaryMetrics, pixel: Option<&PixelMetrics>, mode: AuproMode) -> Self {
        let missing = Metric::Undefined(Undefined::NotEvaluated);
        let pick = |f: fn(&PixelMetrics) -> Metric| pixel.map_or(missing, f);
        let aupro = match mode {
            AuproMode::Sampled => pick(|p| p.aupro_sampled),
            AuproMode::Exact => pick(|p| p.aupro),
        };
        ClassMetrics {
            class: class.into(),
            image_auroc: image.auroc,
            image_ap: image.average_precision,
            image_f1_max: image.f1_max,
            pixel_auroc: pick(|p| p.auroc),
            pixel_ap: pick(|p| p.average_precision),
            pixel_f1_max: pick(|p| p.f1_max),
            pixel_aupro: aupro,
            aupro_mode: mode,
        }
    }

    /// The seven metrics with their column names, in table order.
    pub fn fields(&self) -> [(&'static str, Metric); 7] {
        [
            ("image_auroc", self.image_auroc),
            ("image_ap", self.image_ap),
            ("image_f1_max", self.image_f1_max),
            ("pixel_auroc", self.pixel_auroc),
            ("pixel_ap", self.pixel_ap),
            ("pixel_f1_max", self.pixel_f1_max),
            ("pixel_aupro", self.pixel_aupro),
        ]
    }
}

/// The mean of one metric over classes, with how many classes were used and skipped.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct MeanMetric {
    /// The mean over the classes where the metric is defined; [`Undefined::NoDefinedClass`]
    /// when there is none.
    pub value: Metric,
    /// Classes averaged.
    pub used: usize,
    /// Classes skipped because their metric is undefined.
    pub skipped: usize,
}

impl MeanMetric {
    /// The mean of the defined values among `metrics`.
    pub fn of(metrics: impl IntoIterator<Item = Metric>) -> Self {
        let (mut sum, mut used, mut skipped) = (0.0, 0usize, 0usize);
        for m in metrics {
            match m {
                Metric::Value(v) => {
                    sum += v;
                    used += 1;
                }
                Metric::Undefined(_) => skipped += 1,
            }
        }
        let value =
            if used == 0 { Metric::Undefined(Undefined::NoDefinedClass) } else { Metric::Value(sum / used as f64) };
        MeanMetric { value, used, skipped }
    }
}

impl fmt::Display for MeanMetric {
    /// ×100, one decimal, with "(k skipped)" when classes were left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value.percent())?;
        if self.skipped > 0 {
            write!(f, " ({} skipped)", self.skipped)?;
        }
        Ok(())
    }
}

/// The mean over classes of each of the seven metrics.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MeanMetrics {
    /// Image AUROC.
    pub image_auroc: MeanMetric,
    /// Image average precision.
    pub image_ap: MeanMetric,
    /// Image F1-max.
    pub image_f1_max: MeanMetric,
    /// Pixel AUROC.
    pub pixel_auroc: MeanMetric,
    /// Pixel average precision.
    pub pixel_ap: MeanMetric,
    /// Pixel F1-max.
    pub pixel_f1_max: MeanMetric,
    /// Pixel AUPRO.
    pub pixel_aupro: MeanMetric,
}

impl MeanMetrics {
    /// The seven means with their column names, in table order.
    pub fn fields(&self) -> [(&'static str, MeanMetric); 7] {
        [
            ("image_auroc", self.image_auroc),
            ("image_ap", self.image_ap),
            ("image_f1_max", self.image_f1_max),
            ("pixel_auroc", self.pixel_auroc),
            ("pixel_ap", self.pixel_ap),
            ("pixel_f1_max", self.pixel_f1_max),
            ("pixel_aupro", self.pixel_aupro),
        ]
    }
}

/// The mean over classes, as the papers' "mean" row: each metric averages the classes where it
/// is defined and counts the others as skipped (never a NaN in the mean).
pub fn mean_over_classes(classes: &[ClassMetrics]) -> MeanMetrics {
    let mean = |f: fn(&ClassMetrics) -> Metric| MeanMetric::of(classes.iter().map(f));
    MeanMetrics {
        image_auroc: mean(|c| c.image_auroc),
        image_ap: mean(|c| c.image_ap),
        image_f1_max: mean(|c| c.image_f1_max),
        pixel_auroc: mean(|c| c.pixel_auroc),
        pixel_ap: mean(|c| c.pixel_ap),
        pixel_f1_max: mean(|c| c.pixel_f1_max),
        pixel_aupro: mean(|c| c.pixel_aupro),
    }
}
