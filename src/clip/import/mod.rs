//! Importing CLIP checkpoints into model files (DESIGN.md "Model file", `tokenclip import`).
//!
//! Sources: OpenAI's TorchScript `.pt`, open_clip's `.safetensors` / `.bin` / `.pt` (plain or
//! training checkpoints with `state_dict` and `module.` prefixes), and Hugging Face `CLIPModel`
//! `model.safetensors`. The architecture is read from the tensor shapes (heads = width / 64, as
//! OpenAI's loader assumes); released ViTs are recognised by name. Tensors are converted one at
//! a time and the output is written atomically, so a failed import leaves no file behind.

pub mod activation;
pub mod layout;
pub mod pickle;
mod text_embeddings;
pub mod torch;
pub mod zip;

use std::collections::BTreeMap;
#[cfg(not(target_arch = "wasm32"))]
use std::path::Path;

pub use self::activation::Sidecars;
use self::layout::{Layout, Recipe};
use super::config::{
    architecture_name, Activation, ClipConfig, DetectionConfig, ModelConfig, TextConfig, VisionConfig, WeightDType,
    HEAD_WIDTH,
};
use super::model_file::{metadata, tensor_specs, TensorSpec};

use super::safetensors::{f16_bytes, f32_bytes, FilePlan, PlannedTensor, SafetensorsFile, StDType};
use super::ModelError;
use crate::io::bytes::RandomAccess;

/// What `tokenclip import` can be asked to change (everything else is read from the checkpoint).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ImportOptions {
    /// Storage type of the weight matrices.
    pub dtype: WeightDType,
    /// Detection input size S (default 518).
    pub image_size: Option<usize>,
    /// First DPAM layer, 1-indexed (default depth / 4).
    pub dpam_start: Option<usize>,
    /// Feature layers, 1-indexed (default the last).
    pub feature_layers: Option<Vec<usize>>,
    /// Leave the text tower out.
    pub vision_only: bool,
    /// Where the text embeddings come from (none: a CLIP-only file that cannot detect).
    pub prompts: Option<PromptSource>,
    /// Scoring hyperparameters stored in the file.
    pub detection: DetectionConfig,
    /// The MLP activation (`--activation`): needed when the checkpoint does not say.
    pub activation: Option<Activation>,
}

/// The prompts `tokenclip import --prompts` turns into text embeddings.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptSource {
    /// An AnomalyCLIP checkpoint, a model file made by `train`, or a prompts safetensors file
    /// (native only: read from disk).
    File(std::path::PathBuf),
    /// Prompts already read (as the browser does from a downloaded checkpoint), with a description
    /// of where they came from for the model file's metadata.
    Loaded {
        /// The prompts.
        prompts: Box<crate::tokenclip::prompts::Prompts>,
        /// Where they came from (`prompts: …` in `info --model`).
        source: String,
    },
    /// The training-free prompt ensemble for a class name (METHOD.md C).
    Ensemble {
        /// Fills the `{}` of every state phrase ("object" by default).
        class_name: String,
    },
}

/// A checkpoint opened for reading, whatever its container.
pub enum Checkpoint {
    /// A safetensors file (open_clip or Hugging Face).
    Safetensors(SafetensorsFile),
    /// A torch zip archive (`torch.save` or TorchScript).
    Torch(torch::TorchCheckpoint),
}

impl Checkpoint {
    /// Opens `path`, choosing the reader from the first bytes (a zip is a torch archive).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        let name = path.display().to_string();
        let file = crate::io::bytes::open_file(path).map_err(|e| ModelError::io(&name, e))?;
        Self::from_source(file, name)
    }

    /// Opens the checkpoint held in `src` (named `name` in messages), as [`Self::open`] does.
    pub fn from_source(src: Box<dyn RandomAccess>, name: String) -> Result<Self, ModelError> {
        let mut magic = [0u8; 4];
        if src.len() < 4 {
            return Err(ModelError::corrupt(&name, "file is too short to be a checkpoint"));
        }
        src.read_at(0, &mut magic).map_err(|e| ModelError::io(&name, e))?;
        if magic == *b"PK\x03\x04" || magic[0] == 0x80 {
            return Ok(Checkpoint::Torch(torch::TorchCheckpoint::from_source(src, name)?));
        }
        Ok(Checkpoint::Safetensors(SafetensorsFile::from_source(src, name)?))
    }

    /// Every tensor's shape by name.
    pub fn shapes(&self) -> BTreeMap<String, Vec<usize>> {
        match self {
            Checkpoint::Safetensors(f) => f.header.tensors.iter().map(|(n, e)| (n.clone(), e.shape.clone())).collect(),
            Checkpoint::Torch(t) => t.tensors().iter().map(|(n, e)| (n.clone(), e.shape.clone())).collect(),
        }
    }

    /// Tensor `name` as f32.
    pub fn read_f32(&self, name: &str) -> Result<Vec<f32>, ModelError> {
        match self {
            Checkpoint::Safetensors(f) => f.read_f32(name),
            Checkpoint::Torch(t) => t.read_f32(name),
        }
    }
}

/// Imports the CLIP checkpoint at `src` into a model file at `out`, with the text embeddings of
/// `opts.prompts` when given (the text tower runs once here, on the CPU, in f32). Returns the
/// file's configuration. A Hugging Face checkpoint's `config.json` beside it is checked.
#[cfg(not(target_arch = "wasm32"))]
pub fn import_clip(src: &Path, out: &Path, opts: &ImportOptions) -> Result<ModelConfig, crate::Error> {
    let ckpt = Checkpoint::open(src)?;
    let be = crate::backend::cpu::CpuBackend::new();
    let plan = pollster::block_on(plan_import(&be, &ckpt, &Sidecars::beside(src), opts))?;
    super::safetensors::write_atomic_with(out, |w| plan.write(w, &mut |_, _| {}))?;
    Ok(plan.config)
}

/// An import worked out up to writing: the model file's configuration and layout, the text
/// embeddings already computed, the weights still in the checkpoint (read and converted one
/// tensor at a time by [`ImportPlan::write`]).
pub struct ImportPlan<'a> {
    /// The configuration the model file records.
    pub config: ModelConfig,
    ckpt: &'a Checkpoint,
    names: Names,
    specs: Vec<TensorSpec>,
    planned: Vec<PlannedTensor>,
    extra: BTreeMap<String, Vec<f32>>,
    file: FilePlan,
}

/// How the checkpoint's tensors are named: its shapes, the recipes of its layout, its prefix.
struct Names {
    path: String,
    shapes: BTreeMap<String, Vec<usize>>,
    recipes: BTreeMap<String, Recipe>,
    prefix: String,
}

impl Names {
    fn recipe(&self, name: &str) -> Recipe {
        self.recipes.get(name).cloned().unwrap_or_else(|| Recipe::Copy(format!("{}{name}", self.prefix)))
    }

    fn shape_of(&self, name: &str) -> Result<Vec<usize>, ModelError> {
        layout::recipe_shape(&self.recipe(name), &self.shapes)
            .map_err(|missing| ModelError::MissingTensor { path: self.path.clone(), name: missing })
    }
}

/// Reads the checkpoint's architecture and activation, checks every tensor the model file
/// needs, and encodes the prompts of `opts.prompts` with the checkpoint's text tower on `be`.
/// `sidecars` are the config files found beside the checkpoint (they name the activation and
/// are checked against the tensors). Nothing is written.
pub async fn plan_import<'a, B: crate::Backend>(
    be: &B,
    ckpt: &'a Checkpoint,
    sidecars: &Sidecars,
    opts: &ImportOptions,
) -> Result<ImportPlan<'a>, crate::Error> {
    let path = match ckpt {
        Checkpoint::Safetensors(f) => f.path().to_string(),
        Checkpoint::Torch(t) => t.path().to_string(),
    };
    let shapes = ckpt.shapes();
    let (layout, prefix) =
        layout::detect(&shapes).map_err(|what| ModelError::Unsupported { path: path.clone(), what })?;
    let (vis_prefix, txt_prefix, vis_suffix, txt_suffix) = match layout {
        Layout::OpenAi => ("visual.transformer.resblocks.", "transformer.resblocks.", "ln_1.weight", "ln_1.weight"),
        Layout::HuggingFace => {
            ("vision_model.encoder.layers.", "text_model.encoder.layers.", "layer_norm1.weight", "layer_norm1.weight")
        }
    };
    let vision_layers = layout::count_layers(&shapes, &format!("{prefix}{vis_prefix}"), vis_suffix);
    let text_layers = layout::count_layers(&shapes, &format!("{prefix}{txt_prefix}"), txt_suffix);
    let recipes = layout::recipes(layout, &prefix, vision_layers, text_layers);
    let names = Names { path, shapes, recipes, prefix };
    let text_needed = !opts.vision_only || opts.prompts.is_some();
    let mut clip = infer_config(&|n| names.shape_of(n), vision_layers, text_layers, !text_needed, &names.path)?;
    let torchscript = matches!(ckpt, Checkpoint::Torch(t) if t.is_torchscript());
    let ((vision_act, text_act), _how) =
        activation::decide(layout, torchscript, sidecars, &clip, opts.activation, &names.path)?;
    clip.vision.activation = vision_act;
    if let Some(t) = clip.text.as_mut() {
        t.activation = text_act;
    }
    let mut config = ModelConfig::for_clip(clip, opts.dtype);
    config.detection = opts.detection.clone();
    if let Some(s) = opts.image_size {
        config.input_size = s;
    }
    if let Some(d) = opts.dpam_start {
        config.dpam_start = d;
    }
    if let Some(f) = &opts.feature_layers {
        config.feature_layers = f.clone();
    }
    config.validate()?;

    let mut extra = BTreeMap::new();
    if let Some(source) = &opts.prompts {
        let recipe = |n: &str| names.recipe(n);
        let ckpt_source = CheckpointSource { ckpt, path: &names.path, shapes: &names.shapes, recipe: &recipe };
        extra = text_embeddings::compute(be, &ckpt_source, source, &mut config).await?;
    }
    if opts.vision_only {
        config.clip.text = None;
    }
    config.validate()?;

    let specs = tensor_specs(&config);
    for s in specs.iter().filter(|s| !extra.contains_key(&s.name)) {
        let got = names.shape_of(&s.name)?;
        if got != s.shape {
            return Err(ModelError::ShapeMismatch {
                path: names.path.clone(),
                name: source_name(&names.recipe(&s.name)),
                expected: s.shape.clone(),
                got,
            }
            .into());
        }
    }
    let planned: Vec<PlannedTensor> =
        specs.iter().map(|s| PlannedTensor { name: s.name.clone(), dtype: s.dtype, shape: s.shape.clone() }).collect();
    let file = FilePlan::new(&metadata(&config)?, &planned)?;
    Ok(ImportPlan { config, ckpt, names, specs, planned, extra, file })
}

impl ImportPlan<'_> {
    /// The model file's size in bytes.
    pub fn total_bytes(&self) -> u64 {
        self.file.total()
    }

    /// Writes the model file to `w`, converting one tensor at a time; `progress(done, total)`
    /// is called with byte counts after each tensor.
    pub fn write(&self, w: &mut dyn std::io::Write, progress: &mut dyn FnMut(u64, u64)) -> Result<(), ModelError> {
        let total = self.total_bytes();
        let mut done = self.file.prefix.len() as u64;
        let path = &self.names.path;
        self.file.write(w, &self.planned, path, |i| {
            let spec: &TensorSpec = &self.specs[i];
            let data = match self.extra.get(&spec.name) {
                Some(data) => f32_bytes(data),
                None => {
                    let data = build(self.ckpt, &self.names.recipe(&spec.name), &self.names.shapes)?;
                    if let Some(bad) = data.iter().position(|v| !v.is_finite()) {
                        return Err(ModelError::corrupt(
                            path,
                            format!("tensor `{}` holds a non-finite value at {bad}", spec.name),
                        ));
                    }
                    match spec.dtype {
                        StDType::F16 => f16_bytes(&data),
                        _ => f32_bytes(&data),
                    }
                }
            };
            done += data.len() as u64;
            progress(done, total);
            Ok(data)
        })
    }
}

/// The checkpoint seen through the recipes as model-file tensors in f32 (what the text tower
/// loads from when import encodes prompts).
struct CheckpointSource<'a> {
    ckpt: &'a Checkpoint,
    path: &'a str,
    shapes: &'a BTreeMap<String, Vec<usize>>,
    recipe: &'a dyn Fn(&str) -> Recipe,
}

impl super::weights::TensorSource for CheckpointSource<'_> {
    fn source_name(&self) -> &str {
        self.path
    }

    fn read_raw(&self, name: &str) -> Result<super::weights::RawTensor, ModelError> {
        let r = (self.recipe)(name);
        let shape = layout::recipe_shape(&r, self.shapes)
            .map_err(|missing| ModelError::MissingTensor { path: self.path.into(), name: missing })?;
        let data = build(self.ckpt, &r, self.shapes)?;
        Ok(super::weights::RawTensor { dtype: StDType::F32, shape, bytes: f32_bytes(&data) })
    }
}

fn source_name(r: &Recipe) -> String {
    match r {
        Recipe::Copy(n) | Recipe::Transpose(n) => n.clone(),
        Recipe::Concat(parts) => parts.join(" + "),
    }
}

/// Materialises one recipe as f32.
fn build(ckpt: &Checkpoint, r: &Recipe, shapes: &BTreeMap<String, Vec<usize>>) -> Result<Vec<f32>, ModelError> {
    match r {
        Recipe::Copy(n) => ckpt.read_f32(n),
        Recipe::Transpose(n) => {
            let data = ckpt.read_f32(n)?;
            let (rows, cols) = match shapes.get(n).map(Vec::as_slice) {
                Some([r, c]) => (*r, *c),
                _ => return Ok(data),
            };
            let mut out = vec![0.0; data.len()];
            for i in 0..rows {
                for j in 0..cols {
                    out[j * rows + i] = data[i * cols + j];
                }
            }
            Ok(out)
        }
        Recipe::Concat(parts) => {
            let mut out = Vec::new();
            for p in parts {
                out.extend(ckpt.read_f32(p)?);
            }
            Ok(out)
        }
    }
}

/// Reads the architecture from the shapes of the (model-file-named) tensors.
fn infer_config(
    shape: &dyn Fn(&str) -> Result<Vec<usize>, ModelError>,
    vision_layers: usize,
    text_layers: usize,
    vision_only: bool,
    path: &str,
) -> Result<ClipConfig, ModelError> {
    let unsupported = |what: String| ModelError::Unsupported { path: path.into(), what };
    let width = match shape("visual.class_embedding")?.as_slice() {
        [w] => *w,
        s => return Err(unsupported(format!("visual.class_embedding has shape {s:?}, expected [width]"))),
    };
    let patch_size = match shape("visual.conv1.weight")?.as_slice() {
        [o, 3, p, q] if *o == width && p == q => *p,
        s => return Err(unsupported(format!("visual.conv1.weight has shape {s:?}, expected [{width}, 3, p, p]"))),
    };
    let positions = shape("visual.positional_embedding")?.first().copied().unwrap_or(0);
    let grid = (1..=positions).find(|g| g * g + 1 >= positions).unwrap_or(0);
    if grid == 0 || grid * grid + 1 != positions {
        return Err(unsupported(format!("{positions} visual positions is not a square grid plus a class token")));
    }
    let embed_dim = shape("visual.proj")?.get(1).copied().unwrap_or(0);
    let heads_of = |w: usize, tower: &str| {
        if !w.is_multiple_of(HEAD_WIDTH) {
            Err(unsupported(format!("{tower} width {w} is not a multiple of {HEAD_WIDTH} (heads = width / 64)")))
        } else {
            Ok(w / HEAD_WIDTH)
        }
    };
    if vision_layers == 0 {
        return Err(unsupported("no vision residual blocks found".into()));
    }
    let mlp_of = |name: String| shape(&name).map(|s| s.first().copied().unwrap_or(0));
    let vision = VisionConfig {
        width,
        layers: vision_layers,
        heads: heads_of(width, "vision")?,
        mlp_width: mlp_of("visual.transformer.resblocks.0.mlp.c_fc.weight".into())?,
        patch_size,
        image_size: grid * patch_size,
        activation: Activation::default(),
    };
    let text = if vision_only {
        None
    } else {
        let (vocab_size, tw) = match shape("token_embedding.weight")?.as_slice() {
            [v, w] => (*v, *w),
            s => return Err(unsupported(format!("token_embedding.weight has shape {s:?}"))),
        };
        if text_layers == 0 {
            return Err(unsupported("no text residual blocks found (use --vision-only for an image-only file)".into()));
        }
        Some(TextConfig {
            width: tw,
            layers: text_layers,
            heads: heads_of(tw, "text")?,
            mlp_width: mlp_of("transformer.resblocks.0.mlp.c_fc.weight".into())?,
            context_length: shape("positional_embedding")?.first().copied().unwrap_or(0),
            vocab_size,
            activation: Activation::default(),
        })
    };
    let name = architecture_name(&vision, embed_dim);
    Ok(ClipConfig { name, embed_dim, vision, text })
}
