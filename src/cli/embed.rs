//! `tokenclip embed`: open_clip's `encode_image(preprocess(img))` and `encode_text(tokenize(t))`,
//! not normalised, written to a safetensors file (`image_embeds` [I, D], `text_embeds` [T, D]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use tokenclip::backend::{Backend, TensorInfo};
use tokenclip::clip::model::ClipModel;
use tokenclip::clip::model_file::ModelFile;
use tokenclip::clip::safetensors::{f32_bytes, write_atomic, PlannedTensor, StDType};
use tokenclip::clip::tokenizer::Tokenizer;
use tokenclip::io::image::{read_image, ImageLimits};
use tokenclip::io::preprocess::{preprocess, ResizeMode};

use super::Global;

/// `tokenclip embed` arguments.
#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// The model: a name (`tokenclip models`), a model file, or a URL of one; a name is
    /// downloaded and converted on first use, then read from the cache.
    #[arg(long, default_value = tokenclip::hub::DEFAULT_MODEL)]
    model: String,
    /// An image to encode (repeatable).
    #[arg(long = "image")]
    images: Vec<PathBuf>,
    /// A text to encode (repeatable).
    #[arg(long = "text")]
    texts: Vec<String>,
    /// Output safetensors file.
    #[arg(long)]
    out: PathBuf,
}

/// Encodes every image and text and writes the embeddings.
pub fn run(g: &Global, args: &EmbedArgs) -> anyhow::Result<()> {
    if args.images.is_empty() && args.texts.is_empty() {
        bail!("nothing to embed: give at least one --image or --text");
    }
    let model = super::models::model_path(g, &args.model)?;
    let file = ModelFile::open(&model)?;
    if !args.texts.is_empty() && file.config.clip.text.is_none() {
        bail!(
            "{}: this model file has no text tower (imported with --vision-only); it cannot embed texts",
            file.path()
        );
    }
    let device = super::open_device(g)?;
    let (images, texts) = super::with_backend!(&device, be => embed_all(be, &file, args))?;
    let d = file.config.clip.embed_dim;
    let mut planned = Vec::new();
    let mut data = Vec::new();
    for (name, rows) in [("image_embeds", images), ("text_embeds", texts)] {
        if !rows.is_empty() {
            planned.push(PlannedTensor { name: name.into(), dtype: StDType::F32, shape: vec![rows.len() / d, d] });
            data.push(rows);
        }
    }
    let mut meta = BTreeMap::new();
    meta.insert("model".to_string(), model.display().to_string());
    meta.insert("images".to_string(), serde_json::to_string(&args.images)?);
    meta.insert("texts".to_string(), serde_json::to_string(&args.texts)?);
    write_atomic(&args.out, &meta, &planned, |i| Ok(f32_bytes(&data[i])))?;
    println!(
        "wrote {} image and {} text embeddings (D = {d}) to {}",
        args.images.len(),
        args.texts.len(),
        args.out.display()
    );
    Ok(())
}

fn embed_all<B: Backend>(be: &B, file: &ModelFile, args: &EmbedArgs) -> anyhow::Result<(Vec<f32>, Vec<f32>)> {
    let model = ClipModel::load(file, &file.config, be).with_context(|| format!("loading {}", file.path()))?;
    let size = model.vision.config().image_size;
    let mut images = Vec::new();
    for path in &args.images {
        let img = read_image(path, &ImageLimits::default())?;
        let pixels = preprocess(&img, size as u32, ResizeMode::ShorterSideCrop);
        let x = be.upload(&pixels, &[3, size, size])?;
        let e = model.vision.encode_image(be, &x)?;
        debug_assert_eq!(e.shape(), &[1, file.config.clip.embed_dim]);
        images.extend(pollster::block_on(be.read(&e))?);
    }
    let mut texts = Vec::new();
    if let Some(text) = &model.text {
        let tok = Tokenizer::shared()?;
        for t in &args.texts {
            let ids = tok.tokenize(t, text.config().context_length);
            let e = text.encode_tokens(be, &ids)?;
            texts.extend(pollster::block_on(be.read(&e))?);
        }
    }
    Ok((images, texts))
}
