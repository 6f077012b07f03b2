//! Which MLP activation a checkpoint was trained with, from what its source says (never
//! guessed): OpenAI's TorchScript files are QuickGELU; a Hugging Face `config.json` names
//! `hidden_act` per tower; an open_clip checkpoint has `open_clip_config.json` beside it on the
//! hub (`model_cfg.quick_gelu`); otherwise `--activation` must say. The configs are also checked
//! against the shapes read from the tensors.

use serde_json::Value;

use super::layout::Layout;
use crate::clip::config::{Activation, ClipConfig};
use crate::clip::ModelError;

/// Config files found beside a checkpoint: their path (for messages) and text.
#[derive(Debug, Clone, Default)]
pub struct Sidecars {
    /// A Hugging Face `config.json`.
    pub hf_config: Option<(String, String)>,
    /// An open_clip `open_clip_config.json`.
    pub open_clip_config: Option<(String, String)>,
}

impl Sidecars {
    /// The config files in the folder of `path`.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn beside(path: &std::path::Path) -> Self {
        let read = |name: &str| {
            let p = path.parent()?.join(name);
            Some((p.display().to_string(), std::fs::read_to_string(&p).ok()?))
        };
        Sidecars { hf_config: read("config.json"), open_clip_config: read("open_clip_config.json") }
    }
}

/// How the activation was decided, for the model file's description.
pub const HOW_TORCHSCRIPT: &str = "OpenAI TorchScript";

fn parse(path: &str, text: &str) -> Result<Value, ModelError> {
    serde_json::from_str(text).map_err(|e| ModelError::corrupt(path, format!("not valid JSON: {e}")))
}

/// Checks the config's sizes against the tensors'; errors name the checkpoint and the config.
fn check_fields(path: &str, cfg: &str, json: &Value, fields: &[(&str, usize)]) -> Result<(), ModelError> {
    for (pointer, want) in fields {
        if let Some(v) = json.pointer(pointer).and_then(Value::as_u64) {
            if v != *want as u64 {
                let field = pointer.trim_start_matches('/').replace('/', ".");
                return Err(ModelError::Unsupported {
                    path: path.into(),
                    what: format!(
                        "{field} is {v} in {cfg} but the checkpoint's tensors say {want}: the config is for another model"
                    ),
                });
            }
        }
    }
    Ok(())
}

fn hf_act(path: &str, cfg: &str, json: &Value, tower: &str) -> Result<Activation, ModelError> {
    // transformers' CLIPVisionConfig / CLIPTextConfig default to quick_gelu.
    match json.pointer(&format!("/{tower}/hidden_act")).and_then(Value::as_str).unwrap_or("quick_gelu") {
        "quick_gelu" => Ok(Activation::QuickGelu),
        "gelu" => Ok(Activation::Gelu),
        other => Err(ModelError::Unsupported {
            path: path.into(),
            what: format!("{tower}.hidden_act is `{other}` in {cfg}; only quick_gelu and gelu (exact) are supported"),
        }),
    }
}

/// The (vision, text) activations of a checkpoint of `layout` whose shapes gave `clip`, and
/// how they were decided. `explicit` is `--activation`: it decides when the source says
/// nothing, and must agree when it does.
///
/// # Errors
/// An activation that cannot be determined (the message says how to state it), a config that
/// contradicts the tensors or names an unsupported activation, or `--activation` contradicting
/// the source.
pub fn decide(
    layout: Layout,
    torchscript: bool,
    sidecars: &Sidecars,
    clip: &ClipConfig,
    explicit: Option<Activation>,
    path: &str,
) -> Result<((Activation, Activation), String), ModelError> {
    let (v, t) = (&clip.vision, clip.text.as_ref());
    let found: Option<((Activation, Activation), String)> = match layout {
        Layout::OpenAi if torchscript => Some(((Activation::QuickGelu, Activation::QuickGelu), HOW_TORCHSCRIPT.into())),
        Layout::HuggingFace => match &sidecars.hf_config {
            Some((cfg, text)) => {
                let json = parse(cfg, text)?;
                let mut fields = vec![
                    ("/vision_config/hidden_size", v.width),
                    ("/vision_config/num_hidden_layers", v.layers),
                    ("/vision_config/patch_size", v.patch_size),
                    ("/vision_config/image_size", v.image_size),
                    ("/projection_dim", clip.embed_dim),
                ];
                if let Some(t) = t {
                    fields
                        .extend([("/text_config/hidden_size", t.width), ("/text_config/num_hidden_layers", t.layers)]);
                }
                check_fields(path, cfg, &json, &fields)?;
                let acts = (hf_act(path, cfg, &json, "vision_config")?, hf_act(path, cfg, &json, "text_config")?);
                Some((acts, format!("hidden_act in {cfg}")))
            }
            None => None,
        },
        Layout::OpenAi => match &sidecars.open_clip_config {
            Some((cfg, text)) => {
                let json = parse(cfg, text)?;
                let mut fields = vec![
                    ("/model_cfg/embed_dim", clip.embed_dim),
                    ("/model_cfg/vision_cfg/width", v.width),
                    ("/model_cfg/vision_cfg/layers", v.layers),
                    ("/model_cfg/vision_cfg/patch_size", v.patch_size),
                    ("/model_cfg/vision_cfg/image_size", v.image_size),
                ];
                if let Some(t) = t {
                    fields.extend([("/model_cfg/text_cfg/width", t.width), ("/model_cfg/text_cfg/layers", t.layers)]);
                }
                check_fields(path, cfg, &json, &fields)?;
                // open_clip's `act_layer` is nn.GELU unless `quick_gelu` is set.
                let quick = json.pointer("/model_cfg/quick_gelu").and_then(Value::as_bool).unwrap_or(false);
                let a = if quick { Activation::QuickGelu } else { Activation::Gelu };
                Some(((a, a), format!("model_cfg.quick_gelu in {cfg}")))
            }
            None => None,
        },
    };
    match (found, explicit) {
        (Some((acts, how)), Some(e)) if acts != (e, e) => Err(ModelError::Unsupported {
            path: path.into(),
            what: format!(
                "--activation {} contradicts {how}, which says {} (vision) / {} (text)",
                e.name(),
                acts.0.name(),
                acts.1.name()
            ),
        }),
        (Some(found), _) => Ok(found),
        (None, Some(e)) => Ok(((e, e), "--activation".into())),
        (None, None) => Err(ModelError::Unsupported {
            path: path.into(),
            what: "its MLP activation cannot be told from the file: OpenAI's CLIPs and open_clip's `-quickgelu` \
                   models use QuickGELU, open_clip's own models (LAION-2B, DataComp, MetaCLIP, …) exact GELU. Put the \
                   model's open_clip_config.json (open_clip) or config.json (Hugging Face) beside the file, as the hub \
                   ships them, or say --activation quick-gelu or --activation gelu"
                .into(),
        }),
    }
}
