//! From per-image detection results to per-class metrics, one class at a time in bounded memory
//! (METHOD.md D).
//!
//! Image scores and labels are kept (8 bytes an image); maps go straight into the class's
//! streaming [`PixelAccumulator`] with their mask and are dropped, so memory does not grow with
//! the number of images: one accumulator per class at a time ([`PixelAccumulator::new`]: at most
//! 72 MiB), plus a second for the pooled ("overall") curves when asked.
//!
//! Masks: a normal image's mask is all zero; an anomalous image's is read with
//! [`read_mask`]. An anomalous image without a usable mask (missing,
//! unreadable, or not the size of its image) still counts for the image metrics and is left out
//! of the pixel metrics; a class none of whose anomalous images has a usable mask gets no pixel
//! metrics ([`Undefined::NotEvaluated`]). Every such case is a [`Skip`] in the report.

use std::path::Path;

use super::cache::CachedResult;
use super::dataset::{ClassSet, Sample};
use super::mask::read_mask;
use super::report::{ClassResult, Evaluation, ImageRecord, MaskUse, Skip, SkipScope};
use super::{image_metrics, AuproMode, ClassMetrics, Curves, Metric, PixelAccumulator, Undefined};

/// How [`Evaluator`] computes the metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EvalOptions {
    /// Which AUPRO the table shows (both are computed). Default [`AuproMode::Sampled`].
    pub aupro: AuproMode,
    /// Also pool all classes (for the "overall" curves). Default `false`.
    pub pooled: bool,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions { aupro: AuproMode::Sampled, pooled: false }
    }
}

impl EvalOptions {
    /// Sets [`aupro`](Self::aupro).
    pub fn with_aupro(mut self, aupro: AuproMode) -> Self {
        self.aupro = aupro;
        self
    }

    /// Sets [`pooled`](Self::pooled).
    pub fn with_pooled(mut self, pooled: bool) -> Self {
        self.pooled = pooled;
        self
    }
}

/// Collects results class by class.
#[derive(Debug)]
pub struct Evaluator {
    opts: EvalOptions,
    root: std::path::PathBuf,
    out: Evaluation,
    pooled: Option<Accumulated>,
}

impl Evaluator {
    /// An evaluator for a dataset in `root` (image paths are reported relative to it).
    pub fn new(root: &Path, opts: EvalOptions) -> Self {
        Evaluator {
            opts,
            root: root.to_path_buf(),
            out: Evaluation::default(),
            pooled: opts.pooled.then(Accumulated::default),
        }
    }

    /// Starts class `set`; add its images to the returned run, then [`ClassRun::finish`] it.
    pub fn class(&mut self, set: &ClassSet) -> ClassRun<'_> {
        // A class without any mask has no pixel metrics, so its pixels stay out of the pool too.
        let pool_pixels = set.anomalous() == 0 || set.masks() > 0;
        ClassRun { name: set.name.clone(), acc: Accumulated::default(), ev: self, pool_pixels }
    }

    /// The results.
    pub fn finish(mut self) -> Evaluation {
        if let Some(p) = self.pooled.take() {
            self.out.pooled = Some(p.finish("overall", self.opts.aupro));
        }
        self.out
    }
}

/// Scores, labels and pixels of a class (or of all, pooled).
#[derive(Debug, Default)]
struct Accumulated {
    scores: Vec<f32>,
    labels: Vec<bool>,
    pixels: PixelAccumulator,
    skipped_images: usize,
    pixel_images: usize,
    masks_used: usize,
}

impl Accumulated {
    fn finish(self, name: &str, mode: AuproMode) -> ClassResult {
        let image = image_metrics(&self.scores, &self.labels).unwrap_or_else(|_| {
            // Unreachable: scores are checked finite and labels pushed with them.
            let m = Metric::Undefined(Undefined::NotEvaluated);
            super::BinaryMetrics { auroc: m, average_precision: m, f1_max: m, curves: Curves::default() }
        });
        let anomalous = self.labels.iter().filter(|&&l| l).count();
        let pixel = (anomalous == 0 || self.masks_used > 0).then(|| self.pixels.finish());
        let none = Metric::Undefined(Undefined::NotEvaluated);
        ClassResult {
            metrics: ClassMetrics::new(name, &image, pixel.as_ref(), mode),
            pixel_aupro_exact: pixel.as_ref().map_or(none, |p| p.aupro),
            pixel_aupro_sampled: pixel.as_ref().map_or(none, |p| p.aupro_sampled),
            images: self.scores.len(),
            normal: self.scores.len() - anomalous,
            anomalous,
            skipped_images: self.skipped_images,
            pixel_images: self.pixel_images,
            pixel: pixel.as_ref().map(super::report::PixelSummary::of),
            image_curves: image.curves,
            pixel_curves: pixel.map(|p| p.curves),
        }
    }
}

/// One class being evaluated.
#[derive(Debug)]
pub struct ClassRun<'a> {
    ev: &'a mut Evaluator,
    name: String,
    acc: Accumulated,
    pool_pixels: bool,
}

impl ClassRun<'_> {
    /// Adds one image: its detection result, or why there is none. Returns the notes to show
    /// the user (each a sentence naming the file), also kept as [`Skip`]s.
    ///
    /// # Shapes
    /// `result.map`: `[result.size, result.size]`.
    pub fn add(&mut self, sample: &Sample, result: Result<&CachedResult, String>) -> Vec<String> {
        let path = sample.image.strip_prefix(&self.ev.root).unwrap_or(&sample.image).display().to_string();
        let mut record = ImageRecord {
            class: self.name.clone(),
            image: path.clone(),
            defect: sample.defect.clone(),
            anomalous: sample.label,
            score: None,
            map_max: None,
            mask: MaskUse::NotEvaluated,
            note: None,
        };
        let mut notes = Vec::new();
        let result =
            result.and_then(
                |r| {
                    if r.score.is_finite() {
                        Ok(r)
                    } else {
                        Err(format!("the image score is {}", r.score))
                    }
                },
            );
        match result {
            Err(reason) => {
                self.acc.skipped_images += 1;
                if let Some(p) = self.ev.pooled.as_mut() {
                    p.skipped_images += 1;
                }
                notes.push(self.skip(&path, SkipScope::Image, &reason));
                record.note = Some(reason);
            }
            Ok(r) => {
                record.score = Some(r.score);
                record.map_max = Some(r.map_max);
                for acc in std::iter::once(&mut self.acc).chain(self.ev.pooled.as_mut()) {
                    acc.scores.push(r.score);
                    acc.labels.push(sample.label);
                }
                record.mask = match self.add_pixels(sample, r) {
                    Ok(used) => used,
                    Err((used, reason)) => {
                        notes.push(self.skip(&path, SkipScope::Pixels, &reason));
                        record.note = Some(reason);
                        used
                    }
                };
            }
        }
        self.ev.out.images.push(record);
        notes
    }

    /// Adds the image's map with its mask to the pixel accumulators.
    fn add_pixels(&mut self, sample: &Sample, r: &CachedResult) -> Result<MaskUse, (MaskUse, String)> {
        let s = r.size;
        let mask = if !sample.label {
            vec![false; s * s]
        } else {
            let Some(path) = &sample.mask else {
                return Err((MaskUse::Missing, "no mask".into()));
            };
            let m = read_mask(path, s).map_err(|e| (MaskUse::Unusable, e.to_string()))?;
            if (m.width, m.height) != (r.image_width, r.image_height) {
                let what = format!(
                    "mask {} is {}x{} but its image is {}x{}",
                    path.display(),
                    m.width,
                    m.height,
                    r.image_width,
                    r.image_height
                );
                return Err((MaskUse::Unusable, what));
            }
            m.pixels
        };
        self.acc.pixels.add(&r.map, &mask, s, s).map_err(|e| (MaskUse::Unusable, format!("anomaly map: {e}")))?;
        self.acc.pixel_images += 1;
        self.acc.masks_used += usize::from(sample.label);
        if let Some(p) = self.ev.pooled.as_mut().filter(|_| self.pool_pixels) {
            // Same inputs as the line above, which accepted them.
            let _ = p.pixels.add(&r.map, &mask, s, s);
            p.pixel_images += 1;
            p.masks_used += usize::from(sample.label);
        }
        Ok(if sample.label { MaskUse::Mask } else { MaskUse::Normal })
    }

    fn skip(&mut self, path: &str, scope: SkipScope, reason: &str) -> String {
        let s = Skip { class: self.name.clone(), path: Some(path.to_owned()), scope, reason: reason.to_owned() };
        let note = s.to_string();
        self.ev.out.skipped.push(s);
        note
    }

    /// Computes the class's metrics and returns notes for what made some undefined (no normal or
    /// no anomalous image, no usable mask).
    pub fn finish(mut self) -> Vec<String> {
        let n = self.acc.scores.len();
        let anomalous = self.acc.labels.iter().filter(|&&l| l).count();
        let reason = if n == 0 {
            Some("no image could be evaluated: every metric is n/a")
        } else if anomalous == 0 {
            Some("no anomalous images: AUROC, AP, F1-max and the pixel metrics are n/a")
        } else if anomalous == n {
            Some("no normal images: image AUROC is n/a")
        } else if self.acc.masks_used == 0 {
            Some("no anomalous image has a usable mask: pixel metrics not evaluated")
        } else {
            None
        };
        let mut notes = Vec::new();
        if let Some(r) = reason {
            let s = Skip { class: self.name.clone(), path: None, scope: SkipScope::Class, reason: r.to_owned() };
            notes.push(s.to_string());
            self.ev.out.skipped.push(s);
        }
        let acc = std::mem::take(&mut self.acc);
        self.ev.out.classes.push(acc.finish(&self.name, self.ev.opts.aupro));
        notes
    }
}
