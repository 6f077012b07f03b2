//! Recognising a checkpoint's layout and mapping its tensors to the OpenAI/open_clip names.
//!
//! OpenAI's TorchScript files and open_clip's checkpoints already use those names (possibly under
//! a prefix such as `state_dict.module.`); Hugging Face `CLIPModel` files use their own names, split
//! attention into q/k/v and store projections transposed.

use std::collections::BTreeMap;

/// How one model-file tensor is made from checkpoint tensors.
#[derive(Debug, Clone, PartialEq)]
pub enum Recipe {
    /// The tensor as is.
    Copy(String),
    /// A 2-D tensor transposed (Hugging Face `Linear` projections → OpenAI `[in, out]` matrices).
    Transpose(String),
    /// Tensors concatenated along the first dimension (Hugging Face q, k, v → `in_proj`).
    Concat(Vec<String>),
}

/// The layouts import understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// OpenAI / open_clip names (`visual.conv1.weight`, …).
    OpenAi,
    /// Hugging Face `CLIPModel` names (`vision_model.embeddings.patch_embedding.weight`, …).
    HuggingFace,
}

/// Finds the layout and the prefix its names sit under (`""`, `state_dict.`, `state_dict.module.`, …).
/// `Err` carries a description of what was found instead.
pub fn detect(names: &BTreeMap<String, Vec<usize>>) -> Result<(Layout, String), String> {
    for (marker, layout) in [
        ("visual.conv1.weight", Layout::OpenAi),
        ("vision_model.embeddings.patch_embedding.weight", Layout::HuggingFace),
    ] {
        if let Some(name) = names
            .keys()
            .find(|n| n.ends_with(marker) && (n.len() == marker.len() || n[..n.len() - marker.len()].ends_with('.')))
        {
            return Ok((layout, name[..name.len() - marker.len()].to_string()));
        }
    }
    if names.keys().any(|n| n.contains("visual.layer1.") || n.contains("visual.attnpool.")) {
        return Err("a ResNet CLIP (visual.layer1…, visual.attnpool…); only ViT CLIPs are supported".into());
    }
    if names.keys().any(|n| n.contains("visual.trunk.")) {
        return Err("an open_clip model with a timm vision trunk; only the OpenAI ViT layout is supported".into());
    }
    let some: Vec<&String> = names.keys().take(5).collect();
    Err(format!("no CLIP ViT vision tower found (no visual.conv1.weight); first tensors: {some:?}"))
}

/// Counts `{prefix}{i}.{suffix}` names for i = 0, 1, … until one is missing.
pub fn count_layers(names: &BTreeMap<String, Vec<usize>>, prefix: &str, suffix: &str) -> usize {
    (0..).take_while(|i| names.contains_key(&format!("{prefix}{i}.{suffix}"))).count()
}

/// Recipes for every model-file name, from the source names (prefix already included in `p`).
pub fn recipes(layout: Layout, p: &str, vision_layers: usize, text_layers: usize) -> BTreeMap<String, Recipe> {
    let mut out = BTreeMap::new();
    let copy = |s: String| Recipe::Copy(format!("{p}{s}"));
    match layout {
        Layout::OpenAi => {
            // Names are already right; the caller decides which are needed.
            return out;
        }
        Layout::HuggingFace => {
            let v = "vision_model.";
            out.insert("visual.class_embedding".into(), copy(format!("{v}embeddings.class_embedding")));
            out.insert("visual.conv1.weight".into(), copy(format!("{v}embeddings.patch_embedding.weight")));
            out.insert("visual.positional_embedding".into(), copy(format!("{v}embeddings.position_embedding.weight")));
            for s in ["weight", "bias"] {
                out.insert(format!("visual.ln_pre.{s}"), copy(format!("{v}pre_layrnorm.{s}")));
                out.insert(format!("visual.ln_post.{s}"), copy(format!("{v}post_layernorm.{s}")));
                out.insert(format!("ln_final.{s}"), copy(format!("text_model.final_layer_norm.{s}")));
            }
            out.insert("visual.proj".into(), Recipe::Transpose(format!("{p}visual_projection.weight")));
            hf_blocks(&mut out, p, &format!("{v}encoder.layers."), "visual.transformer.resblocks.", vision_layers);
            let t = "text_model.";
            out.insert("token_embedding.weight".into(), copy(format!("{t}embeddings.token_embedding.weight")));
            out.insert("positional_embedding".into(), copy(format!("{t}embeddings.position_embedding.weight")));
            out.insert("text_projection".into(), Recipe::Transpose(format!("{p}text_projection.weight")));
            hf_blocks(&mut out, p, &format!("{t}encoder.layers."), "transformer.resblocks.", text_layers);
        }
    }
    out
}

fn hf_blocks(out: &mut BTreeMap<String, Recipe>, p: &str, from: &str, to: &str, layers: usize) {
    for i in 0..layers {
        let (f, t) = (format!("{p}{from}{i}."), format!("{to}{i}."));
        for s in ["weight", "bias"] {
            let qkv = ["q", "k", "v"].iter().map(|x| format!("{f}self_attn.{x}_proj.{s}")).collect();
            let packed = if s == "weight" { "in_proj_weight" } else { "in_proj_bias" };
            out.insert(format!("{t}attn.{packed}"), Recipe::Concat(qkv));
            out.insert(format!("{t}attn.out_proj.{s}"), Recipe::Copy(format!("{f}self_attn.out_proj.{s}")));
            out.insert(format!("{t}ln_1.{s}"), Recipe::Copy(format!("{f}layer_norm1.{s}")));
            out.insert(format!("{t}ln_2.{s}"), Recipe::Copy(format!("{f}layer_norm2.{s}")));
            out.insert(format!("{t}mlp.c_fc.{s}"), Recipe::Copy(format!("{f}mlp.fc1.{s}")));
            out.insert(format!("{t}mlp.c_proj.{s}"), Recipe::Copy(format!("{f}mlp.fc2.{s}")));
        }
    }
}

/// The shape a recipe produces from the source shapes, or the missing source name.
pub fn recipe_shape(r: &Recipe, shapes: &BTreeMap<String, Vec<usize>>) -> Result<Vec<usize>, String> {
    let get = |n: &String| shapes.get(n).cloned().ok_or_else(|| n.clone());
    match r {
        Recipe::Copy(n) => get(n),
        Recipe::Transpose(n) => match get(n)?.as_slice() {
            [a, b] => Ok(vec![*b, *a]),
            s => Ok(s.iter().rev().copied().collect()),
        },
        Recipe::Concat(parts) => {
            let Some(first) = parts.first() else { return Ok(vec![]) };
            let mut shape = get(first)?;
            for part in &parts[1..] {
                let s = get(part)?;
                match (s.split_first(), shape.split_first_mut()) {
                    (Some((rows, rest)), Some((total, want))) if *rest == *want => *total += rows,
                    _ => return Ok(vec![]),
                }
            }
            Ok(shape)
        }
    }
}
