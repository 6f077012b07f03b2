//! `tokenclip reference`: a model file with a few-shot memory of normal images inside, and the
//! memory building `detect --reference` shares (docs/FEW_SHOT.md).

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use tokenclip::clip::config::ModelConfig;
use tokenclip::clip::few_shot::{default_layers, model_fingerprint, FewShotConfig, DEFAULT_WEIGHT};
use tokenclip::clip::model_file::ModelFile;
use tokenclip::clip::weights::TensorSource;
use tokenclip::io::image::{read_image, ImageLimits};
use tokenclip::io::preprocess::detection_pixels;
use tokenclip::tokenclip::few_shot::memory_tensors;
use tokenclip::{BackendChoice, DeviceDetector};

use super::inputs::expand_inputs;
use super::{open_device, Global};

/// How a few-shot memory is built and joins the zero-shot map (shared by `reference` and
/// `detect --reference`).
#[derive(Debug, Args)]
pub struct MemoryArgs {
    /// Few-shot layers (1-indexed, comma-separated, of the vision tower); default: the last of
    /// each quarter (ViT-L/14: 6,12,18,24; ViT-B/16: 3,6,9,12).
    #[arg(long, value_delimiter = ',')]
    layers: Option<Vec<usize>>,
    /// Weight of the few-shot map: map = zero-shot + WEIGHT · few-shot [default: 1].
    #[arg(long)]
    weight: Option<f32>,
    /// Keep the zero-shot image score (by default it becomes (score + few-shot max) / 2).
    #[arg(long)]
    no_image_score: bool,
}

/// `tokenclip reference` arguments.
#[derive(Debug, Args)]
pub struct ReferenceArgs {
    /// The model: a name (`tokenclip models`), a model file, or a URL of one.
    #[arg(long, default_value = tokenclip::hub::DEFAULT_MODEL)]
    model: String,
    /// Normal images of the product: files, folders (searched recursively) and glob patterns.
    #[arg(long, required = true, num_args = 1..)]
    normal: Vec<String>,
    /// The model file to write: the model with the memory inside (replacing any it had).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    memory: MemoryArgs,
}

/// Writes `--out`: the model with a memory of the `--normal` images.
pub fn run(g: &Global, args: &ReferenceArgs) -> anyhow::Result<()> {
    let file = ModelFile::open(&super::models::model_path(g, &args.model)?)?;
    if std::path::Path::new(file.path()) == args.out.as_path() {
        anyhow::bail!("--out {} is the model being read; write the new model file elsewhere", args.out.display());
    }
    let mut detector = DeviceDetector::load(open_device(g)?, g.backend == BackendChoice::Auto, &file, &file.config)?;
    let (config, tensors) = build_memory(&mut detector, &file, &args.normal, &args.memory)?;
    file.write_with(&args.out, &config, &tensors)?;
    let fs = config.few_shot.as_ref().map(|f| (f.shots, f.layers.clone())).unwrap_or_default();
    eprintln!("wrote {} with a few-shot memory of {} images at layers {:?}", args.out.display(), fs.0, fs.1);
    Ok(())
}

/// The memory of the `normal` images (files, folders, globs) under `detector`'s model (read from
/// `src`): the model's configuration with the memory's settings, and the memory tensors by name.
/// Unreadable images are named on stderr and skipped; k is reported.
///
/// # Errors
/// No usable image; a layer the model does not tap; a GPU fault without fail-over.
pub fn build_memory(
    detector: &mut DeviceDetector,
    src: &dyn TensorSource,
    normal: &[String],
    opts: &MemoryArgs,
) -> anyhow::Result<(ModelConfig, BTreeMap<String, Vec<f32>>)> {
    opts.check(detector.config(), src)?;
    let inputs = expand_inputs(normal)?;
    for p in &inputs.problems {
        eprintln!("skipped reference: {p}");
    }
    let paths: Vec<PathBuf> = inputs.images.into_iter().map(|i| i.path).collect();
    let built = memory_of(detector, src, &paths, &normal.join(", "), opts, &mut |m| eprintln!("{m}"))?;
    eprintln!(
        "few-shot memory: k = {} normal images{}",
        built.used.len(),
        skipped_note(paths.len() - built.used.len())
    );
    Ok((built.config, built.tensors))
}

/// A memory made by [`memory_of`].
pub struct BuiltMemory {
    /// The model's configuration with the memory's settings.
    pub config: ModelConfig,
    /// The memory tensors by name.
    pub tensors: BTreeMap<String, Vec<f32>>,
    /// The images that went in (the others could not be read).
    pub used: Vec<PathBuf>,
}

impl MemoryArgs {
    /// The settings checked against the model before any image is encoded.
    fn check(&self, model: &ModelConfig, src: &dyn TensorSource) -> anyhow::Result<FewShotConfig> {
        let fs = FewShotConfig {
            shots: 1,
            layers: self.layers.clone().unwrap_or_else(|| default_layers(model)),
            weight: self.weight.unwrap_or(DEFAULT_WEIGHT),
            image_score: !self.no_image_score,
            source: String::new(),
            model: model_fingerprint(src)?,
        };
        fs.validate(model)?;
        Ok(fs)
    }

    /// What identifies these settings in a cache key.
    pub fn key(&self) -> String {
        format!("{:?}/{}/{}", self.layers, self.weight.unwrap_or(DEFAULT_WEIGHT), self.no_image_score)
    }

    /// Refuses these options when no memory is being built (`needs` names what would build
    /// one): they would be ignored, and a run that ignores what it was told is wrong silently.
    pub fn refuse_without_memory(&self, needs: &str) -> anyhow::Result<()> {
        let given: Vec<&str> = [
            self.layers.is_some().then_some("--layers"),
            self.weight.is_some().then_some("--weight"),
            self.no_image_score.then_some("--no-image-score"),
        ]
        .into_iter()
        .flatten()
        .collect();
        if given.is_empty() {
            return Ok(());
        }
        anyhow::bail!(
            "{} shape a few-shot memory, and none is built without {needs} (a memory stored in the model \
             file keeps the settings it was made with)",
            given.join(", ")
        )
    }
}

/// The memory of the image files `paths` (`from` says where they came from, for `info`);
/// unreadable ones are reported through `say` and skipped.
///
/// # Errors
/// As [`build_memory`].
pub fn memory_of(
    detector: &mut DeviceDetector,
    src: &dyn TensorSource,
    paths: &[PathBuf],
    from: &str,
    opts: &MemoryArgs,
    say: &mut dyn FnMut(String),
) -> anyhow::Result<BuiltMemory> {
    let mut fs = opts.check(detector.config(), src)?;
    let size = detector.input_size();
    let (mut images, mut used) = (Vec::with_capacity(paths.len()), Vec::with_capacity(paths.len()));
    for path in paths {
        let name = path.display().to_string();
        let pixels = read_image(path, &ImageLimits::default())
            .map_err(anyhow::Error::from)
            .and_then(|img| Ok(detection_pixels(&img, size as u32, &name)?));
        let pixels = match pixels {
            Ok(p) => p,
            Err(e) => {
                say(format!("skipped reference {name}: {e:#}"));
                continue;
            }
        };
        images.push(pollster::block_on(detector.patch_embeddings(src, &pixels, &fs.layers))?);
        used.push(path.clone());
        if let Some(note) = detector.take_switch() {
            say(format!("note: {note}"));
        }
    }
    if images.is_empty() {
        anyhow::bail!("none of the {} reference images could be read (see the messages above)", paths.len());
    }
    fs.shots = images.len();
    fs.source = format!("{} images from {from}{}", images.len(), skipped_note(paths.len() - images.len()));
    let layers = fs.layers.clone();
    let mut config = detector.config().clone();
    config.few_shot = Some(fs);
    config.validate()?;
    let tensors = memory_tensors(&config, &layers, &images)?;
    Ok(BuiltMemory { config, tensors, used })
}

fn skipped_note(skipped: usize) -> String {
    if skipped > 0 {
        format!(" ({skipped} skipped)")
    } else {
        String::new()
    }
}
