//! Importing CLIP checkpoints into model files (DESIGN.md "Model file", `tokenclip import`).
//!
//! Sources: OpenAI's TorchScript `.pt`, open_clip's `.safetensors` / `.bin` / `.pt` (plain or
//! training checkpoints with `state_dict` and `module.` prefixes), and Hugging Face `CLIPModel`
//! `model.safetensors`. The architecture is read from the tensor shapes (heads = width / 64, as
//! OpenAI's loader assumes); released ViTs are recognised by name. Tensors are converted one at
//! a time and the output is written atomically, so a failed import leaves no file behind.

pub mod layout;
pub mod pickle;
mod text_embeddings;
pub mod torch;
pub mod zip;

use std::collections::BTreeMap;
use std::path::Path;

use self::layout::{Layout, Recipe};
use super::config::{
    architecture_name, ClipConfig, DetectionConfig, ModelConfig, TextConfig, VisionConfig, WeightDType, HEAD_WIDTH,
};
use super::model_file::{metadata, tensor_specs, TensorSpec};

use super::safetensors::{f16_bytes, f32_bytes, write_atomic, PlannedTensor, SafetensorsFile, StDType};
use super::ModelError;

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
}

/// The prompts `tokenclip import --prompts` turns into text embeddings.
#[derive(Debug, Clone, PartialEq)]
pub enum PromptSource {
    /// An AnomalyCLIP checkpoint, a model file made by `train`, or a prompts safetensors file.
    File(std::path::PathBuf),
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
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        let name = path.display().to_string();
        let mut magic = [0u8; 4];
        {
            use std::io::Read;
            let mut f = std::fs::File::open(path).map_err(|e| ModelError::io(&name, e))?;
            let n = f.read(&mut magic).map_err(|e| ModelError::io(&name, e))?;
            if n < 4 {
                return Err(ModelError::corrupt(&name, "file is too short to be a checkpoint"));
            }
        }
        if magic == *b"PK\x03\x04" || magic[0] == 0x80 {
            return Ok(Checkpoint::Torch(torch::TorchCheckpoint::open(path)?));
        }
        Ok(Checkpoint::Safetensors(SafetensorsFile::open(path)?))
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
/// file's configuration.
pub fn import_clip(src: &Path, out: &Path, opts: &ImportOptions) -> Result<ModelConfig, crate::Error> {
    let path = src.display().to_string();
    let ckpt = Checkpoint::open(src)?;
    let shapes = ckpt.shapes();
    let (layout, prefix) =
        layout::detect(&shapes).map_err(|what| ModelError::Unsupported { path: path.clone(), what })?;
    if layout == Layout::HuggingFace {
        check_hf_activation(src)?;
    }
    let (vis_prefix, txt_prefix, vis_suffix, txt_suffix) = match layout {
        Layout::OpenAi => ("visual.transformer.resblocks.", "transformer.resblocks.", "ln_1.weight", "ln_1.weight"),
        Layout::HuggingFace => {
            ("vision_model.encoder.layers.", "text_model.encoder.layers.", "layer_norm1.weight", "layer_norm1.weight")
        }
    };
    let vision_layers = layout::count_layers(&shapes, &format!("{prefix}{vis_prefix}"), vis_suffix);
    let text_layers = layout::count_layers(&shapes, &format!("{prefix}{txt_prefix}"), txt_suffix);
    let recipes = layout::recipes(layout, &prefix, vision_layers, text_layers);
    let recipe = |name: &str, recipes: &BTreeMap<String, Recipe>| {
        recipes.get(name).cloned().unwrap_or_else(|| Recipe::Copy(format!("{prefix}{name}")))
    };
    let shape_of = |name: &str, recipes: &BTreeMap<String, Recipe>| -> Result<Vec<usize>, ModelError> {
        layout::recipe_shape(&recipe(name, recipes), &shapes)
            .map_err(|missing| ModelError::MissingTensor { path: path.clone(), name: missing })
    };
    let text_needed = !opts.vision_only || opts.prompts.is_some();
    let clip = infer_config(&|n| shape_of(n, &recipes), vision_layers, text_layers, !text_needed, &path)?;
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
        let ckpt_source =
            CheckpointSource { ckpt: &ckpt, path: &path, shapes: &shapes, recipe: &|n| recipe(n, &recipes) };
        extra = text_embeddings::compute(&ckpt_source, source, &mut config)?;
    }
    if opts.vision_only {
        config.clip.text = None;
    }
    config.validate()?;

    let specs = tensor_specs(&config);
    for s in specs.iter().filter(|s| !extra.contains_key(&s.name)) {
        let got = shape_of(&s.name, &recipes)?;
        if got != s.shape {
            return Err(ModelError::ShapeMismatch {
                path: path.clone(),
                name: source_name(&recipe(&s.name, &recipes)),
                expected: s.shape.clone(),
                got,
            }
            .into());
        }
    }
    let planned: Vec<PlannedTensor> =
        specs.iter().map(|s| PlannedTensor { name: s.name.clone(), dtype: s.dtype, shape: s.shape.clone() }).collect();
    write_atomic(out, &metadata(&config)?, &planned, |i| {
        let spec: &TensorSpec = &specs[i];
        if let Some(data) = extra.get(&spec.name) {
            return Ok(f32_bytes(data));
        }
        let data = build(&ckpt, &recipe(&spec.name, &recipes), &shapes)?;
        if let Some(bad) = data.iter().position(|v| !v.is_finite()) {
            return Err(ModelError::corrupt(
                &path,
                format!("tensor `{}` holds a non-finite value at {bad}", spec.name),
            ));
        }
        Ok(match spec.dtype {
            StDType::F16 => f16_bytes(&data),
            _ => f32_bytes(&data),
        })
    })?;
    Ok(config)
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
        })
    };
    let name = architecture_name(&vision, embed_dim);
    Ok(ClipConfig { name, embed_dim, vision, text })
}

/// Hugging Face CLIP configs name their activation; this program implements QuickGELU only.
fn check_hf_activation(src: &Path) -> Result<(), ModelError> {
    let Some(cfg_path) = src.parent().map(|d| d.join("config.json")) else { return Ok(()) };
    let Ok(text) = std::fs::read_to_string(&cfg_path) else { return Ok(()) };
    let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else { return Ok(()) };
    for tower in ["vision_config", "text_config"] {
        if let Some(act) = json.get(tower).and_then(|t| t.get("hidden_act")).and_then(|a| a.as_str()) {
            if act != "quick_gelu" {
                return Err(ModelError::Unsupported {
                    path: cfg_path.display().to_string(),
                    what: format!("{tower}.hidden_act is `{act}`; only QuickGELU CLIPs (OpenAI's) are supported"),
                });
            }
        }
    }
    Ok(())
}
