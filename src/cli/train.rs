//! `tokenclip train`: learns the prompts on a dataset's test split with masks (METHOD.md A5, B),
//! natively. Visual features are computed once per image (GPU or CPU) and cached; each step then
//! runs only the text side on the CPU. Checkpoints (model file + resumable state) every epoch
//! and on Ctrl-C; a JSON-lines log of every step.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use tokenclip::backend::Backend;
use tokenclip::clip::model_file::ModelFile;
use tokenclip::eval::dataset::{Dataset, Sample};
use tokenclip::eval::mask::read_mask;
use tokenclip::io::image::{read_image, ImageLimits};
use tokenclip::io::output::{ensure_dir, write_atomic};
use tokenclip::io::preprocess::detection_pixels;
use tokenclip::train::adam::AdamConfig;
use tokenclip::train::config::TrainConfig;
use tokenclip::train::features::FeatureExtractor;
use tokenclip::train::loss::{LossTerms, TrainImage};
use tokenclip::train::trainer::Trainer;

use super::eval::LayoutArg;
use super::import::DetectionArgs;
use super::progress::Progress;
use super::{open_device, with_backend, Global};

/// `tokenclip train` arguments (defaults: METHOD.md A5 and B).
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The base model, with its text tower: a name (`tokenclip models`), a model file made by
    /// `import`, or a URL of one.
    #[arg(long, default_value = tokenclip::hub::DEFAULT_MODEL)]
    model: String,
    /// The training data (the test split of a dataset with masks).
    #[arg(long)]
    data: PathBuf,
    /// The dataset's layout.
    #[arg(long, value_enum, default_value = "auto")]
    layout: LayoutArg,
    /// Train on these classes only (comma-separated).
    #[arg(long, value_delimiter = ',')]
    classes: Vec<String>,
    /// The model file to write (also OUT.state.safetensors for --resume and OUT.log.jsonl).
    #[arg(long)]
    out: PathBuf,
    /// Continue the run saved beside --out (its hyperparameters are used).
    #[arg(long)]
    resume: bool,
    /// Feature cache folder (default: OUT.cache/).
    #[arg(long)]
    cache: Option<PathBuf>,
    /// Textual subspaces M.
    #[arg(long, default_value_t = 4)]
    subspaces: usize,
    /// Weight of the pixel losses (focal + Dice), averaged over feature layers.
    #[arg(long, default_value_t = 4.0)]
    lambda_local: f32,
    /// Weight of the orthogonality loss.
    #[arg(long, default_value_t = 0.1)]
    lambda_orth: f32,
    /// Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f32,
    /// Adam β1, β2.
    #[arg(long, value_delimiter = ',', num_args = 2, default_values_t = [0.5, 0.999])]
    betas: Vec<f32>,
    /// Passes over the data (default 15; with --resume, a new total for the resumed run).
    #[arg(long)]
    epochs: Option<usize>,
    /// Images per step.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Seed of initialisation and shuffling.
    #[arg(long, default_value_t = 111)]
    seed: u64,
    #[command(flatten)]
    detection: DetectionArgs,
}

impl TrainArgs {
    fn config(&self) -> anyhow::Result<TrainConfig> {
        let [beta1, beta2] = self.betas[..] else { anyhow::bail!("--betas takes two values") };
        let epochs = self.epochs.unwrap_or(TrainConfig::default().epochs);
        if self.batch == 0 || epochs == 0 || self.subspaces == 0 {
            anyhow::bail!("--batch, --epochs and --subspaces must be at least 1");
        }
        Ok(TrainConfig {
            detection: self.detection.config(),
            subspaces: self.subspaces,
            lambda_local: self.lambda_local,
            lambda_orth: self.lambda_orth,
            adam: AdamConfig { lr: self.lr, beta1, beta2, ..AdamConfig::default() },
            epochs,
            batch: self.batch,
            seed: self.seed,
            ..TrainConfig::default()
        })
    }
}

fn sibling(out: &Path, suffix: &str) -> PathBuf {
    let mut s = out.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// One usable training image: its features come from the cache, its mask is kept as bits.
struct Item {
    sample: Sample,
    mask: Option<Vec<u64>>,
}

/// Runs training.
pub fn run(g: &Global, args: &TrainArgs) -> anyhow::Result<()> {
    if g.precision != tokenclip::backend::cpu::Precision::F32 {
        anyhow::bail!("train runs in f32 only (its gradients are checked in f32); drop --precision");
    }
    let base = ModelFile::open(&super::models::model_path(g, &args.model)?)?;
    Trainer::prompt_config(&base, &TrainConfig::default())?; // fails early without a text tower
    let layout = args.layout.layout();
    let mut dataset = Dataset::open(&args.data, layout)?;
    if !args.classes.is_empty() {
        dataset.retain_classes(&args.classes)?;
    }
    eprintln!("{}", dataset.summary());
    let samples: Vec<Sample> = dataset.classes.iter().flat_map(|c| c.samples.iter().cloned()).collect();
    if samples.is_empty() {
        anyhow::bail!("no training images in {}", args.data.display());
    }
    let cache = args.cache.clone().unwrap_or_else(|| sibling(&args.out, ".cache"));
    // Early: a folder that cannot be written fails now, and a killed run's temporary files go.
    let parent = args.out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    ensure_dir(parent)?;
    ensure_dir(&cache)?;
    let device = open_device(g)?;
    with_backend!(&device, be => train(be, &base, args, samples, &cache))
}

fn train<B: Backend>(
    be: &B,
    base: &ModelFile,
    args: &TrainArgs,
    samples: Vec<Sample>,
    cache: &Path,
) -> anyhow::Result<()> {
    let size = base.config.input_size;
    let extractor = FeatureExtractor::load(base, be, Some(cache))?;
    let items = cache_features(be, &extractor, samples, size)?;
    if items.iter().all(|i| i.mask.is_none()) {
        eprintln!("note: no masks found, so training uses image labels only (no pixel losses)");
    }
    let (state, log_path) = (sibling(&args.out, ".state.safetensors"), sibling(&args.out, ".log.jsonl"));
    let mut trainer = if args.resume {
        let mut t = Trainer::resume(base, &state).with_context(|| format!("resuming from {}", state.display()))?;
        if let Some(e) = args.epochs {
            t.config.epochs = e;
        }
        if t.progress.order.len() != items.len() {
            anyhow::bail!(
                "{} has {} images, the saved run {}: resume on the same data",
                args.data.display(),
                items.len(),
                t.progress.order.len()
            );
        }
        eprintln!("resuming at epoch {}, batch {} (step {})", t.progress.epoch + 1, t.progress.batch, t.progress.steps);
        t
    } else {
        Trainer::new(base, args.config()?, items.len())?
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst)).context("installing the Ctrl-C handler")?;
    let mut log = open_log(&log_path, args.resume.then_some(trainer.progress.steps))?;
    while trainer.progress.epoch < trainer.config.epochs {
        let epoch = trainer.progress.epoch;
        let bar = Progress::new(
            trainer.batches(items.len()) as u64,
            &format!("epoch {}/{}", epoch + 1, trainer.config.epochs),
        );
        bar.set_position(trainer.progress.batch as u64);
        while let Some(batch) = trainer.current_batch().map(<[usize]>::to_vec) {
            let start = Instant::now();
            let images =
                batch.iter().map(|&i| load(be, &extractor, &items[i], size)).collect::<anyhow::Result<Vec<_>>>()?;
            let terms = trainer.step(&images)?;
            let secs = start.elapsed().as_secs_f64();
            // One write per line, so a killed run leaves at most one torn line (dropped on resume).
            log.write_all(format!("{}\n", log_line(epoch, trainer.progress.steps, &terms, secs)).as_bytes())?;
            bar.set_message(describe(&terms, secs));
            bar.inc();
            if stop.load(Ordering::SeqCst) {
                bar.finish();
                trainer.save(base, &args.out, &state)?;
                anyhow::bail!("interrupted: checkpoint written to {} (continue with --resume)", args.out.display());
            }
        }
        bar.finish();
        trainer.next_epoch();
        trainer.save(base, &args.out, &state)?;
        eprintln!("epoch {} done: checkpoint {}", epoch + 1, args.out.display());
    }
    Ok(())
}

/// The step log, ready to append: a fresh run starts it empty; a resumed one keeps the lines up
/// to the checkpoint's step (a run killed after it logged more steps, or mid-line, would
/// otherwise leave steps that the resumed run logs again).
fn open_log(path: &Path, resumed_at: Option<u64>) -> anyhow::Result<std::fs::File> {
    let kept = match resumed_at {
        None => String::new(),
        Some(steps) => std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .take_while(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .is_ok_and(|v| v["step"].as_u64().is_some_and(|s| s <= steps))
            })
            .map(|l| format!("{l}\n"))
            .collect(),
    };
    write_atomic(path, kept.as_bytes())?;
    std::fs::OpenOptions::new().append(true).open(path).with_context(|| format!("opening the log {}", path.display()))
}

fn describe(t: &LossTerms, secs: f64) -> String {
    format!(
        "loss {:.4} (ce {:.3}, focal {:.3}, dice {:.3}/{:.3}, orth {:.3}), cos {:.3}, {:.2} s/step",
        t.total, t.ce, t.focal, t.dice_abnormal, t.dice_normal, t.orth, t.mean_offdiag_cosine, secs
    )
}

fn log_line(epoch: usize, step: u64, t: &LossTerms, secs: f64) -> String {
    serde_json::json!({
        "epoch": epoch + 1, "step": step, "loss": t.total, "ce": t.ce, "focal": t.focal,
        "dice_abnormal": t.dice_abnormal, "dice_normal": t.dice_normal, "orth": t.orth,
        "mean_offdiag_cosine": t.mean_offdiag_cosine, "pixel_images": t.pixel_images, "seconds": secs,
    })
    .to_string()
}

/// Computes (or finds in the cache) every image's features and reads its mask; unreadable
/// images and masks are reported and left out. When the dataset has masks, normal images get an
/// all-zero mask (as AnomalyCLIP's loader gives them) and anomalous images without one only the
/// image loss; without any mask, every image has only the image loss.
fn cache_features<B: Backend>(
    be: &B,
    ex: &FeatureExtractor<B>,
    samples: Vec<Sample>,
    size: usize,
) -> anyhow::Result<Vec<Item>> {
    let has_masks = samples.iter().any(|s| s.mask.is_some());
    let bar = Progress::new(samples.len() as u64, "features");
    let (mut items, mut cached) = (Vec::with_capacity(samples.len()), 0);
    for sample in samples {
        bar.set_message(sample.image.display().to_string());
        let got = pollster::block_on(ex.get_or_compute(be, &sample.image, || pixels(&sample.image, size)));
        let mask = sample.mask.as_ref().map(|m| read_mask(m, size)).transpose();
        match (got, mask) {
            (Ok((_, hit)), Ok(mask)) => {
                cached += usize::from(hit);
                let zero = (has_masks && !sample.label).then(|| vec![0u64; (size * size).div_ceil(64)]);
                let mask = mask.map(|m| bits(&m.pixels)).or(zero);
                items.push(Item { sample, mask });
            }
            (Err(e), _) => bar.println(format!("skipped {}: {e}", sample.image.display())),
            (_, Err(e)) => bar.println(format!("skipped {}: mask: {e}", sample.image.display())),
        }
        bar.inc();
    }
    bar.finish();
    eprintln!("features: {} images ({cached} from the cache)", items.len());
    if items.is_empty() {
        anyhow::bail!("no usable training images");
    }
    Ok(items)
}

fn pixels(path: &Path, size: usize) -> Result<Vec<f32>, tokenclip::Error> {
    let img = read_image(path, &ImageLimits::default())?;
    Ok(detection_pixels(&img, size as u32, &path.display().to_string())?)
}

fn bits(pixels: &[bool]) -> Vec<u64> {
    let mut out = vec![0u64; pixels.len().div_ceil(64)];
    for (i, _) in pixels.iter().enumerate().filter(|(_, &p)| p) {
        out[i / 64] |= 1 << (i % 64);
    }
    out
}

fn load<B: Backend>(be: &B, ex: &FeatureExtractor<B>, item: &Item, size: usize) -> anyhow::Result<TrainImage> {
    let (f, _) = pollster::block_on(ex.get_or_compute(be, &item.sample.image, || pixels(&item.sample.image, size)))?;
    let mask = item
        .mask
        .as_ref()
        .map(|b| (0..size * size).map(|i| if b[i / 64] >> (i % 64) & 1 == 1 { 1.0 } else { 0.0 }).collect());
    Ok(TrainImage { patches: f.patches, global: f.global, grid: f.grid, label: item.sample.label, mask })
}
