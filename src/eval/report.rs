//! The evaluation report: per-class metrics, their mean over classes (the papers' "mean" row),
//! per-image results and what was skipped; written as Markdown, JSON and CSV.
//!
//! - `report.md` / the terminal: the papers' table, one row per class and a mean row, ×100 with one
//!   decimal; "n/a" with a footnote giving the reason where a metric is undefined; the mean of a
//!   metric averages the classes where it is defined and says how many it skipped; then the list
//!   of skipped files and classes.
//! - `report.json`: everything at full precision as fractions (not ×100): per class the seven
//!   metrics (`{"value": x}` or `{"undefined": "reason"}`), both AUPRO kinds, counts and pixel
//!   totals with the streaming accumulator's error bounds; the means; the pooled "overall"
//!   metrics (with `--plots`); one record per image (score, map maximum, how its mask was used);
//!   the skips and the dataset reader's problems.
//! - `report.csv`: one row per class and a `mean` row, fractions at full precision, empty cells
//!   for undefined metrics with the reasons in a `notes` column.

use std::fmt;

use serde::Serialize;

use super::dataset::Layout;
use super::{
    mean_over_classes, Approximation, AuproMode, ClassMetrics, Curves, MeanMetric, MeanMetrics, Metric, PixelMetrics,
};

mod text;

/// One class's results (also used for the pooled "overall" results).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassResult {
    /// The seven metrics; `pixel_aupro` is the kind the report's `aupro_mode` names.
    #[serde(flatten)]
    pub metrics: ClassMetrics,
    /// Exact AUPRO.
    pub pixel_aupro_exact: Metric,
    /// AnomalyCLIP's sampled AUPRO.
    pub pixel_aupro_sampled: Metric,
    /// Images evaluated (skipped ones not counted).
    pub images: usize,
    /// Normal images evaluated.
    pub normal: usize,
    /// Anomalous images evaluated.
    pub anomalous: usize,
    /// Images that could not be evaluated.
    pub skipped_images: usize,
    /// Images whose map and mask entered the pixel metrics.
    pub pixel_images: usize,
    /// Pixel totals and how exact the pixel metrics are; `None` without pixel metrics.
    pub pixel: Option<PixelSummary>,
    /// Image-level ROC and PR curves (for plots).
    #[serde(skip)]
    pub image_curves: Curves,
    /// Pixel-level curves (for plots).
    #[serde(skip)]
    pub pixel_curves: Option<Curves>,
}

/// Pixel totals of a class.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct PixelSummary {
    /// Normal pixels.
    pub normal_pixels: u64,
    /// Anomalous pixels.
    pub anomalous_pixels: u64,
    /// Connected regions of the masks.
    pub regions: u64,
    /// Whether the streaming accumulator was exact, and its error bounds.
    pub approximation: Approximation,
}

impl PixelSummary {
    /// The totals of `p`.
    pub fn of(p: &PixelMetrics) -> Self {
        PixelSummary {
            normal_pixels: p.normal_pixels,
            anomalous_pixels: p.anomalous_pixels,
            regions: p.regions,
            approximation: p.approximation,
        }
    }
}

/// How an image's pixels entered the pixel metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MaskUse {
    /// A normal image: all-zero mask.
    Normal,
    /// An anomalous image with its mask.
    Mask,
    /// An anomalous image without a mask: left out of the pixel metrics.
    Missing,
    /// A mask that could not be read or has the wrong size: left out of the pixel metrics.
    Unusable,
    /// The image itself could not be evaluated.
    NotEvaluated,
}

/// One image's result.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ImageRecord {
    /// Its class.
    pub class: String,
    /// Its path, relative to the dataset folder where possible.
    pub image: String,
    /// Its defect type (`good` for normal images).
    pub defect: String,
    /// Its label.
    pub anomalous: bool,
    /// The image score, if it was evaluated.
    pub score: Option<f32>,
    /// The map's maximum, if it was evaluated.
    pub map_max: Option<f32>,
    /// How its pixels were used.
    pub mask: MaskUse,
    /// Why it (or its mask) was skipped.
    pub note: Option<String>,
}

/// What a skip leaves out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipScope {
    /// An image left out of every metric.
    Image,
    /// An image left out of the pixel metrics (its score still counts).
    Pixels,
    /// A class some of whose metrics are undefined.
    Class,
}

/// Something left out of the evaluation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Skip {
    /// The class.
    pub class: String,
    /// The image, for image and pixel skips.
    pub path: Option<String>,
    /// What it leaves out.
    pub scope: SkipScope,
    /// Why.
    pub reason: String,
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.scope, &self.path) {
            (SkipScope::Image, Some(p)) => write!(f, "skipped {p}: {} (left out of every metric)", self.reason),
            (SkipScope::Pixels, Some(p)) => write!(f, "{p}: {} (left out of the pixel metrics)", self.reason),
            _ => write!(f, "class {}: {}", self.class, self.reason),
        }
    }
}

/// What an evaluation produced, before the report adds its context.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Evaluation {
    /// One result per class, in the order evaluated.
    pub classes: Vec<ClassResult>,
    /// All classes pooled, when asked for.
    pub pooled: Option<ClassResult>,
    /// One record per image.
    pub images: Vec<ImageRecord>,
    /// What was left out, and from which metrics.
    pub skipped: Vec<Skip>,
}

/// Where the numbers come from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RunInfo {
    /// The model file.
    pub model: String,
    /// Its input size S (maps and masks are S × S).
    pub input_size: usize,
    /// The dataset folder.
    pub data: String,
    /// Its layout.
    pub layout: Layout,
    /// The backend that ran detection (cached results may come from another).
    pub backend: String,
    /// The few-shot protocol, when the run used one (`eval --shots`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub few_shot: Option<FewShotRun>,
}

/// `eval --shots K --seed S`: K normal training images per class drawn with the seed (the same
/// draw for every run with that seed), made into that class's few-shot memory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FewShotRun {
    /// Images drawn per class (K).
    pub shots: usize,
    /// The seed of the draw.
    pub seed: u64,
    /// Per class, the drawn images (relative to the dataset folder) in the order drawn.
    pub references: std::collections::BTreeMap<String, Vec<String>>,
    /// Drawn images that could not be read, left out of their class's memory.
    pub unreadable: Vec<String>,
}

/// The whole report (serialised as `report.json`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    /// Always `"tokenclip-eval"`.
    pub format: &'static str,
    /// The report format version (1).
    pub format_version: u32,
    /// Model, data and backend.
    #[serde(flatten)]
    pub info: RunInfo,
    /// Which AUPRO `pixel_aupro` is.
    pub aupro_mode: AuproMode,
    /// Per class.
    pub classes: Vec<ClassResult>,
    /// The mean over classes of each metric.
    pub mean: MeanMetrics,
    /// The mean of the exact AUPRO.
    pub mean_aupro_exact: MeanMetric,
    /// The mean of the sampled AUPRO.
    pub mean_aupro_sampled: MeanMetric,
    /// All classes pooled (computed with `--plots`).
    pub overall: Option<ClassResult>,
    /// Per image.
    pub images: Vec<ImageRecord>,
    /// Skipped images, masks and classes.
    pub skipped: Vec<Skip>,
    /// What the dataset reader could not use.
    pub dataset_problems: Vec<String>,
}

impl Report {
    /// The report of `evaluation` with its context; the means are computed here.
    pub fn new(info: RunInfo, aupro_mode: AuproMode, evaluation: Evaluation, dataset_problems: Vec<String>) -> Self {
        let metrics: Vec<ClassMetrics> = evaluation.classes.iter().map(|c| c.metrics.clone()).collect();
        Report {
            format: "tokenclip-eval",
            format_version: 1,
            info,
            aupro_mode,
            mean: mean_over_classes(&metrics),
            mean_aupro_exact: MeanMetric::of(evaluation.classes.iter().map(|c| c.pixel_aupro_exact)),
            mean_aupro_sampled: MeanMetric::of(evaluation.classes.iter().map(|c| c.pixel_aupro_sampled)),
            classes: evaluation.classes,
            overall: evaluation.pooled,
            images: evaluation.images,
            skipped: evaluation.skipped,
            dataset_problems,
        }
    }

    /// Whether nothing was skipped and the reader had no problem.
    pub fn is_complete(&self) -> bool {
        self.skipped.is_empty() && self.dataset_problems.is_empty()
    }

    /// `report.json`: pretty-printed, fractions at full precision.
    pub fn json(&self) -> String {
        // Plain data (strings, numbers, enums): serialisation cannot fail.
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Writes `report.md`, `report.json` and `report.csv` into `dir` (which must exist), each
    /// atomically, and returns their paths.
    ///
    /// # Errors
    /// [`crate::io::InputError`] naming the file that could not be written.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn write(&self, dir: &std::path::Path) -> Result<Vec<std::path::PathBuf>, crate::io::InputError> {
        let files = [("report.md", self.markdown()), ("report.json", self.json()), ("report.csv", self.csv())];
        let mut out = Vec::new();
        for (name, text) in files {
            let p = dir.join(name);
            crate::io::output::write_atomic(&p, text.as_bytes())?;
            out.push(p);
        }
        Ok(out)
    }
}
