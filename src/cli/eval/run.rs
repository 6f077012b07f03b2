//! `eval`'s loop: per image, the cached result or a fresh detection (stored at once), handed to
//! the evaluator class by class, with a progress bar.

use std::fmt;

use tokenclip::clip::model_file::ModelFile;
use tokenclip::clip::weights::TensorSource;
use tokenclip::eval::cache::{CachedResult, Lookup, ResultCache};
use tokenclip::eval::dataset::{Dataset, Sample};
use tokenclip::eval::evaluate::{EvalOptions, Evaluator};
use tokenclip::eval::report::Evaluation;
use tokenclip::io::image::{read_image, ImageLimits};
use tokenclip::io::preprocess::detection_pixels;
use tokenclip::tokenclip::few_shot::WithMemory;
use tokenclip::{Device, DeviceDetector};

use crate::cli::progress::Progress;

/// Where the results came from.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    /// Read from the cache.
    pub cached: usize,
    /// Detected (not in the cache, or no cache).
    pub computed: usize,
    /// Detected again because the cached entry was damaged.
    pub recomputed: usize,
    /// Images that could not be evaluated.
    pub failed: usize,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "images: {} evaluated (cached: {}, computed: {}, recomputed: {}), failed: {}",
            self.cached + self.computed,
            self.cached,
            self.computed,
            self.recomputed,
            self.failed
        )
    }
}

/// `--shots`: the drawn references per class and how their memory is made.
pub struct FewShot<'a> {
    /// Per class, the drawn training normals.
    pub drawn: &'a std::collections::BTreeMap<String, Vec<std::path::PathBuf>>,
    /// The memory settings.
    pub memory: &'a crate::cli::reference::MemoryArgs,
}

/// State shared across images: the detector (loaded at the first image the cache lacks), the
/// cache, the counts.
struct Runner<'a> {
    device: Option<Device>,
    failover: bool,
    file: &'a ModelFile,
    detector: Option<DeviceDetector>,
    cache: Option<&'a ResultCache>,
    stats: Stats,
    cache_write_failed: bool,
    few_shot: Option<FewShot<'a>>,
    /// The class being evaluated, and (with `--shots`) the model with its memory once built.
    class: String,
    memory: Option<(String, WithMemory<'a>)>,
    /// Drawn references that could not be read.
    unreadable: Vec<std::path::PathBuf>,
}

/// Evaluates every image of `ds` on `device`, class by class; with `failover`, a GPU fault moves
/// the run to the CPU; with `few_shot`, each class is detected with its references' memory
/// (built at the class's first image the cache lacks). Also returns the backend that ran (None
/// if every result was cached) and the references that could not be read.
///
/// # Errors
/// Only fatal ones: the model cannot be loaded, or the GPU failed without `failover`; a failing
/// image is skipped and reported.
pub fn evaluate_all(
    device: Device,
    failover: bool,
    file: &ModelFile,
    ds: &Dataset,
    cache: Option<&ResultCache>,
    opts: EvalOptions,
    few_shot: Option<FewShot<'_>>,
) -> anyhow::Result<(Evaluation, Stats, Option<String>, Vec<std::path::PathBuf>)> {
    let mut runner = Runner::new(device, failover, file, cache, few_shot);
    let progress = Progress::new(ds.len() as u64, "images");
    let mut ev = Evaluator::new(&ds.root, opts);
    for class in &ds.classes {
        runner.class.clone_from(&class.name);
        let mut run = ev.class(class);
        for sample in &class.samples {
            let shown = sample.image.strip_prefix(&ds.root).unwrap_or(&sample.image);
            progress.set_message(shown.display().to_string());
            let result = runner.result(sample, &progress)?;
            if result.is_err() {
                runner.stats.failed += 1;
            }
            for note in run.add(sample, result.as_ref().map_err(Clone::clone)) {
                progress.println(note);
            }
            progress.inc();
        }
        for note in run.finish() {
            progress.println(note);
        }
    }
    progress.finish();
    let backend = runner.detector.as_ref().map(DeviceDetector::describe);
    Ok((ev.finish(), runner.stats, backend, runner.unreadable))
}

/// Where [`detect_range`] hands each image's result (`Err`: why there is none).
pub type Sink<'a> = dyn FnMut(&Sample, Result<CachedResult, String>) -> anyhow::Result<()> + 'a;

/// Detects the images `range` of `ds` in evaluation order (classes in order, each class's
/// samples in order; what `--shard` partitions) and hands each result to `sink`, as
/// [`evaluate_all`] does to the evaluator. Returns the counts, the backend that ran (None if
/// every result was cached) and the references that could not be read.
///
/// # Errors
/// As [`evaluate_all`], and whatever `sink` returns.
#[allow(clippy::too_many_arguments)] // evaluate_all's, plus the range and the sink
pub fn detect_range(
    device: Device,
    failover: bool,
    file: &ModelFile,
    ds: &Dataset,
    cache: Option<&ResultCache>,
    few_shot: Option<FewShot<'_>>,
    range: std::ops::Range<usize>,
    sink: &mut Sink<'_>,
) -> anyhow::Result<(Stats, Option<String>, Vec<std::path::PathBuf>)> {
    let mut runner = Runner::new(device, failover, file, cache, few_shot);
    let progress = Progress::new(range.len() as u64, "images");
    let samples = ds.classes.iter().flat_map(|c| c.samples.iter().map(move |s| (c, s)));
    for (class, sample) in samples.skip(range.start).take(range.len()) {
        runner.class.clone_from(&class.name);
        let shown = sample.image.strip_prefix(&ds.root).unwrap_or(&sample.image);
        progress.set_message(shown.display().to_string());
        let result = runner.result(sample, &progress)?;
        if result.is_err() {
            runner.stats.failed += 1;
        }
        sink(sample, result)?;
        progress.inc();
    }
    progress.finish();
    let backend = runner.detector.as_ref().map(DeviceDetector::describe);
    Ok((runner.stats, backend, runner.unreadable))
}

impl<'a> Runner<'a> {
    fn new(
        device: Device,
        failover: bool,
        file: &'a ModelFile,
        cache: Option<&'a ResultCache>,
        few_shot: Option<FewShot<'a>>,
    ) -> Self {
        Runner {
            device: Some(device),
            failover,
            file,
            detector: None,
            cache,
            stats: Stats::default(),
            cache_write_failed: false,
            few_shot,
            class: String::new(),
            memory: None,
            unreadable: Vec::new(),
        }
    }
}

impl Runner<'_> {
    /// The image's result (`Err` with the reason if it cannot be had); the outer error is fatal.
    fn result(&mut self, sample: &Sample, progress: &Progress) -> anyhow::Result<Result<CachedResult, String>> {
        let key = match self.cache.map(|_| ResultCache::image_key(&sample.image)).transpose() {
            Ok(k) => k,
            Err(e) => return Ok(Err(e.to_string())),
        };
        if let (Some(cache), Some(key)) = (self.cache, &key) {
            match cache.load(key) {
                Lookup::Hit(r) if r.size == self.file.config.input_size => {
                    self.stats.cached += 1;
                    return Ok(Ok(r));
                }
                Lookup::Hit(r) => {
                    progress.println(format!(
                        "cache entry {} holds a {}x{} map, the model's is {}: recomputing",
                        cache.entry_path(key).display(),
                        r.size,
                        r.size,
                        self.file.config.input_size
                    ));
                    self.stats.recomputed += 1;
                }
                Lookup::Damaged(e) => {
                    progress.println(format!("{e}: recomputing"));
                    self.stats.recomputed += 1;
                }
                Lookup::Miss => {}
            }
        }
        if let Some(device) = self.device.take() {
            self.detector = Some(DeviceDetector::load(device, self.failover, self.file, &self.file.config)?);
        }
        self.class_memory(progress)?;
        let Some(detector) = &mut self.detector else { anyhow::bail!("the detector could not be loaded") };
        let src: &dyn TensorSource = match &self.memory {
            Some((_, m)) => m,
            None => self.file,
        };
        let result = detect(detector, src, sample);
        if let Some(note) = detector.take_switch() {
            progress.println(format!("note: {note}"));
        }
        let result = match result {
            Ok(r) => r,
            // Without fail-over every later image would fail the same way: stop.
            Err(e) if crate::cli::gpu_fault(&e) => {
                return Err(e.context(format!(
                    "evaluating {} (results so far are cached; without --backend gpu the run would have gone on \
                     on the CPU)",
                    sample.image.display()
                )))
            }
            Err(e) => {
                // Errors name the file; the skip names it already.
                let msg = format!("{e:#}");
                let prefix = format!("{}: ", sample.image.display());
                return Ok(Err(msg.strip_prefix(&prefix).map(str::to_owned).unwrap_or(msg)));
            }
        };
        self.stats.computed += 1;
        if let (Some(cache), Some(key)) = (self.cache, &key) {
            if let Err(e) = cache.store(key, &result) {
                if !self.cache_write_failed {
                    progress.println(format!("cannot cache results ({e}); continuing without caching"));
                    self.cache_write_failed = true;
                }
            }
        }
        Ok(Ok(result))
    }
}

impl Runner<'_> {
    /// With `--shots`, makes sure the detector holds the current class's memory.
    fn class_memory(&mut self, progress: &Progress) -> anyhow::Result<()> {
        let (Some(fs), Some(detector)) = (&self.few_shot, &mut self.detector) else { return Ok(()) };
        if self.memory.as_ref().is_some_and(|(c, _)| *c == self.class) {
            return Ok(());
        }
        let paths = fs.drawn.get(&self.class).cloned().unwrap_or_default();
        let from = format!("the training normals of class {}", self.class);
        let mut say = |m: String| progress.println(m);
        let built = crate::cli::reference::memory_of(detector, self.file, &paths, &from, fs.memory, &mut say)
            .map_err(|e| e.context(format!("the few-shot memory of class {}", self.class)))?;
        self.unreadable.extend(paths.iter().filter(|p| !built.used.contains(p)).cloned());
        let src = WithMemory::new(self.file, built.tensors, built.config.clip.embed_dim);
        detector.set_few_shot(&src, &built.config)?;
        self.memory = Some((self.class.clone(), src));
        Ok(())
    }
}

fn detect(detector: &mut DeviceDetector, file: &dyn TensorSource, sample: &Sample) -> anyhow::Result<CachedResult> {
    let name = sample.image.display().to_string();
    let img = read_image(&sample.image, &ImageLimits::default())?;
    let pixels = detection_pixels(&img, detector.input_size() as u32, &name)?;
    let d = pollster::block_on(detector.detect(file, &pixels))?;
    Ok(CachedResult {
        score: d.score,
        map_max: d.map_max,
        size: d.size,
        map: d.map,
        image_width: img.width,
        image_height: img.height,
    })
}
