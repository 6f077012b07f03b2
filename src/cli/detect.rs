//! `tokenclip detect`: anomaly maps and image scores for files, folders and globs
//! (DESIGN.md "CLI contract").
//!
//! Per image: `NAME.overlay.png` (the map over the image, with a colour bar) and, with
//! `--save-maps`, `NAME.map.npy`; for the run, `scores.csv` and `scores.json`. Unreadable
//! inputs are reported by name and skipped; every file is written atomically. Exit status: 0 when
//! everything worked, 2 when some inputs failed (the rest are written), 1 on a fatal error.
//!
//! With `--shard I/N` (or the environment, docs/SHARDING.md) only shard I's contiguous part of the
//! ordered input list is detected; its overlays and maps go to `--out` as usual, its rows to
//! `OUT/shards/scores.I-of-N.json` instead of `scores.*`, which `tokenclip merge` joins.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use tokenclip::clip::config::ModelConfig;
use tokenclip::clip::model_file::ModelFile;
use tokenclip::clip::weights::TensorSource;
use tokenclip::io::image::{read_image, ImageLimits, RgbImage};
use tokenclip::io::npy::npy_f32;
use tokenclip::io::output::{ensure_dir, write_atomic};
use tokenclip::io::overlay::{encode_png, render_overlay, resize_map, OverlayOptions};
use tokenclip::io::preprocess::detection_pixels;
use tokenclip::tokenclip::few_shot::WithMemory;
use tokenclip::{BackendChoice, Detection, DeviceDetector};

use super::inputs::{expand_inputs, InputImage};
use super::merge::scores::{write_shard, ShardRun};
use super::progress::Progress;
use super::scores::{write_scores, ScoreRow};
use super::{gpu_fault, open_device, Global};

mod sharded;

/// The size maps are written at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MapSize {
    /// Resized (bilinearly) to the input image.
    Original,
    /// The model's S × S (what the papers evaluate).
    Model,
}

/// `tokenclip detect` arguments.
#[derive(Debug, Args)]
pub struct DetectArgs {
    /// The model: a name (`tokenclip models`), a model file, or a URL of one; a name is
    /// downloaded and converted on first use, then read from the cache.
    #[arg(long, default_value = tokenclip::hub::DEFAULT_MODEL)]
    model: String,
    /// Output folder (created if missing).
    #[arg(long, default_value = "tokenclip-out")]
    out: PathBuf,
    /// Flag images whose score is at least this, and outline map regions at least this.
    #[arg(long)]
    threshold: Option<f32>,
    /// Size of saved maps: the input image's, or the model's S × S.
    #[arg(long, value_enum, default_value = "original")]
    map_size: MapSize,
    /// Also write each map as `NAME.map.npy` (f32, H × W).
    #[arg(long)]
    save_maps: bool,
    /// Heat-map opacity in the overlays, 0–1.
    #[arg(long, default_value_t = 0.5)]
    opacity: f32,
    /// Normal images of the product for a one-off few-shot memory: a file, a folder or a quoted
    /// glob pattern; repeat the option for more. `tokenclip reference` stores one in a model file.
    #[arg(long, value_name = "PATH")]
    reference: Vec<String>,
    #[command(flatten)]
    memory: super::reference::MemoryArgs,
    #[command(flatten)]
    shard: super::shard::ShardArgs,
    /// Images: files, folders (searched recursively) and glob patterns.
    #[arg(required = true)]
    inputs: Vec<String>,
}

/// Some inputs failed while the others were processed: exit status 2. Other commands (`eval`)
/// return it too, with their own message.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct PartialFailure {
    message: String,
}

impl PartialFailure {
    /// `failed` of `total` inputs failed.
    fn inputs(failed: usize, total: usize) -> Self {
        Self::new(format!("{failed} of {total} inputs failed (see the messages above); the others were written"))
    }

    /// A partial failure saying `message`.
    pub fn new(message: impl Into<String>) -> Self {
        PartialFailure { message: message.into() }
    }
}

/// Runs detection over every input.
pub fn run(g: &Global, args: &DetectArgs) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&args.opacity) {
        anyhow::bail!("--opacity must be within 0 and 1, got {}", args.opacity);
    }
    let shard = args.shard.resolve()?;
    if args.reference.is_empty() {
        args.memory.refuse_without_memory("--reference")?;
    }
    let inputs = expand_inputs(&args.inputs)?;
    for p in &inputs.problems {
        eprintln!("skipped: {p}");
    }
    let model = super::models::model_path(g, &args.model)?;
    let file = ModelFile::open(&model)?;
    let fingerprint = shard.map(|_| sharded::fingerprint(g, args, &model, &inputs)).transpose()?;
    let range = shard.map_or(0..inputs.images.len(), |s| s.range(inputs.images.len()));
    let images = &inputs.images[range.clone()];
    ensure_dir(&args.out)?;
    let device = open_device(g)?;
    let mut detector = DeviceDetector::load(device, g.backend == BackendChoice::Auto, &file, &file.config)?;
    let rows = if args.reference.is_empty() {
        detect_all(detector, &file, args, images)?
    } else {
        let (config, tensors) = super::reference::build_memory(&mut detector, &file, &args.reference, &args.memory)?;
        let src = WithMemory::new(&file, tensors, config.clip.embed_dim);
        detector.set_few_shot(&src, &config)?;
        detect_all(detector, &src, args, images)?
    };
    match (shard, fingerprint) {
        (Some(spec), Some(fingerprint)) => {
            let run = ShardRun {
                spec,
                fingerprint,
                range,
                images: inputs.images.len(),
                threshold: args.threshold,
                problems: &inputs.problems,
            };
            let path = write_shard(&args.out, run, &rows)?;
            eprintln!("shard {spec}: {} of {} inputs, rows in {}", rows.len(), inputs.images.len(), path.display());
        }
        _ => write_scores(&args.out, &rows, args.threshold)?,
    }
    let failed = rows.iter().filter(|r| r.error.is_some()).count() + inputs.problems.len();
    let flagged = rows.iter().filter(|r| r.flagged == Some(true)).count();
    eprintln!(
        "{} images scored{}; results in {}",
        rows.len() - rows.iter().filter(|r| r.error.is_some()).count(),
        args.threshold.map(|t| format!(", {flagged} flagged at ≥ {t}")).unwrap_or_default(),
        args.out.display()
    );
    if failed > 0 {
        return Err(PartialFailure::inputs(failed, rows.len() + inputs.problems.len()).into());
    }
    Ok(())
}

fn detect_all(
    mut detector: DeviceDetector,
    file: &dyn TensorSource,
    args: &DetectArgs,
    images: &[InputImage],
) -> anyhow::Result<Vec<ScoreRow>> {
    if let Some(note) = detector.take_switch() {
        eprintln!("note: {note}");
    }
    let progress = Progress::new(images.len() as u64, "images");
    let mut rows = Vec::with_capacity(images.len());
    for input in images {
        progress.set_message(input.path.display().to_string());
        let result = detect_one(&mut detector, file, args, input);
        if let Some(note) = detector.take_switch() {
            progress.println(format!("note: {note}"));
        }
        let row = match result {
            Ok((d, written)) => ScoreRow {
                path: input.path.display().to_string(),
                score: Some(d.score),
                max: Some(d.map_max),
                flagged: args.threshold.map(|t| d.score >= t),
                overlay: Some(written.overlay),
                map: written.map,
                error: None,
            },
            // Without fail-over, a GPU fault would fail every later image too: stop here.
            Err(e) if gpu_fault(&e) => {
                progress.finish();
                return Err(e.context(format!(
                    "detecting {} (the images before it were written; without --backend gpu the run would have \
                     gone on on the CPU)",
                    input.path.display()
                )));
            }
            Err(e) => {
                let msg = format!("{e:#}");
                progress.println(format!("skipped {}: {msg}", input.path.display()));
                ScoreRow {
                    path: input.path.display().to_string(),
                    score: None,
                    max: None,
                    flagged: None,
                    overlay: None,
                    map: None,
                    error: Some(msg),
                }
            }
        };
        rows.push(row);
        progress.inc();
    }
    progress.finish();
    Ok(rows)
}

fn detect_one(
    detector: &mut DeviceDetector,
    file: &dyn TensorSource,
    args: &DetectArgs,
    input: &InputImage,
) -> anyhow::Result<(Detection, Written)> {
    let name = input.path.display().to_string();
    let img = read_image(&input.path, &ImageLimits::default())?;
    let size = detector.input_size();
    let pixels = detection_pixels(&img, size as u32, &name)?;
    let d = pollster::block_on(detector.detect(file, &pixels))?;
    let written = write_outputs(detector.config(), args, input, &img, &d)
        .with_context(|| format!("writing the results of {name}"))?;
    Ok((d, written))
}

/// The files written for one image, relative to the output folder (as `scores.*` name them).
struct Written {
    overlay: String,
    map: Option<String>,
}

fn write_outputs(
    config: &ModelConfig,
    args: &DetectArgs,
    input: &InputImage,
    img: &RgbImage,
    d: &Detection,
) -> anyhow::Result<Written> {
    let stem = args.out.join(&input.out_stem);
    let rel = |suffix: &str| with_suffix(&input.out_stem, suffix).to_string_lossy().replace('\\', "/");
    if let Some(parent) = stem.parent() {
        ensure_dir(parent)?;
    }
    write_atomic(&with_suffix(&stem, "overlay.png"), &overlay_png(config, img, d, args.opacity, args.threshold)?)?;
    if args.save_maps {
        let (w, h) = match args.map_size {
            MapSize::Original => (img.width as usize, img.height as usize),
            MapSize::Model => (d.size, d.size),
        };
        let map = resize_map(&d.map, d.size, d.size, w, h)?;
        write_atomic(&with_suffix(&stem, "map.npy"), &npy_f32(&map, &[h, w]))?;
    }
    Ok(Written { overlay: rel("overlay.png"), map: args.save_maps.then(|| rel("map.npy")) })
}

/// The PNG of `d`'s map over `img` with a colour bar (the overlay `detect` writes and `serve`
/// returns), outlining regions at least `threshold`.
pub(super) fn overlay_png(
    config: &ModelConfig,
    img: &RgbImage,
    d: &Detection,
    opacity: f32,
    threshold: Option<f32>,
) -> anyhow::Result<Vec<u8>> {
    // The zero-shot map sums one probability per layer; a memory adds its weighted map.
    let layers = config.feature_layers.len() as f32 + config.few_shot.as_ref().map_or(0.0, |f| f.weight);
    let opts = OverlayOptions::default().with_opacity(opacity).with_range(0.0, layers).with_outline(threshold);
    let overlay = render_overlay(img, &d.map, d.size, d.size, &opts)?;
    Ok(encode_png(&overlay)?)
}

/// `dir/name` → `dir/name.suffix` (the stem may itself contain dots).
fn with_suffix(stem: &Path, suffix: &str) -> PathBuf {
    let mut s = stem.as_os_str().to_owned();
    s.push(".");
    s.push(suffix);
    PathBuf::from(s)
}
