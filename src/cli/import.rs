//! `tokenclip import`: a CLIP checkpoint (OpenAI, open_clip or Hugging Face) → a model file.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use tokenclip::clip::config::WeightDType;
use tokenclip::clip::import::{import_clip, ImportOptions};

/// `tokenclip import` arguments.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The CLIP checkpoint: OpenAI TorchScript `.pt`, open_clip `.safetensors`/`.bin`/`.pt`, or a
    /// Hugging Face `CLIPModel` `model.safetensors`.
    #[arg(long)]
    clip: PathBuf,
    /// Storage type of the weight matrices (f16 halves the file; maths stays f32).
    #[arg(long, default_value = "f32")]
    dtype: WeightDType,
    /// Detection input size S (images are squashed to S×S). Default 518.
    #[arg(long)]
    image_size: Option<usize>,
    /// First layer of the DPAM V-V path, 1-indexed. Default depth / 4.
    #[arg(long)]
    dpam_start: Option<usize>,
    /// Layers whose patch embeddings are summed, 1-indexed, comma-separated. Default the last.
    #[arg(long, value_delimiter = ',')]
    feature_layers: Option<Vec<usize>>,
    /// Leave the text tower out (a smaller file for inference only).
    #[arg(long)]
    vision_only: bool,
    /// The model file to write.
    #[arg(long)]
    out: PathBuf,
}

/// Runs the import and prints what was recognised.
pub fn run(args: &ImportArgs) -> anyhow::Result<()> {
    let mut opts = ImportOptions::default();
    opts.dtype = args.dtype;
    opts.image_size = args.image_size;
    opts.dpam_start = args.dpam_start;
    opts.feature_layers = args.feature_layers.clone();
    opts.vision_only = args.vision_only;
    let config = import_clip(&args.clip, &args.out, &opts)
        .with_context(|| format!("import of {} failed", args.clip.display()))?;
    println!("imported {} → {}", args.clip.display(), args.out.display());
    super::info::print_config(&config);
    Ok(())
}
