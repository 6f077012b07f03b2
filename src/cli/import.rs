//! `tokenclip import`: a CLIP checkpoint (OpenAI, open_clip or Hugging Face) → a model file.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use tokenclip::clip::config::{Assign, DetectionConfig, Mix, ScoreMode, WeightDType};
use tokenclip::clip::import::{import_clip, ImportOptions, PromptSource};
use tokenclip::tokenclip::ensemble::DEFAULT_CLASS_NAME;

/// `tokenclip import` arguments.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The CLIP checkpoint: OpenAI TorchScript `.pt`, open_clip `.safetensors`/`.bin`/`.pt`, or a
    /// Hugging Face `CLIPModel` `model.safetensors`.
    #[arg(long)]
    clip: PathBuf,
    /// The MLP activation, when the checkpoint does not say (an open_clip file without its
    /// open_clip_config.json beside it): quick-gelu (OpenAI's CLIPs, `-quickgelu` models) or
    /// gelu (open_clip's own models).
    #[arg(long)]
    activation: Option<tokenclip::clip::config::Activation>,
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
    /// Leave the text tower out (a smaller file for inference only, e.g. for the web page).
    #[arg(long)]
    vision_only: bool,
    /// Text embeddings for detection: an AnomalyCLIP checkpoint (.pth), a model file made by
    /// `train` (or any safetensors with `prompt.*`), or `ensemble` (training-free prompts).
    #[arg(long)]
    prompts: Option<String>,
    /// Class name for `--prompts ensemble`.
    #[arg(long, default_value = DEFAULT_CLASS_NAME)]
    class_name: String,
    #[command(flatten)]
    detection: DetectionArgs,
    /// The model file to write.
    #[arg(long)]
    out: PathBuf,
}

/// Scoring hyperparameters stored in the model file (METHOD.md A4, B); defaults from METHOD.md.
#[derive(Debug, Args)]
pub struct DetectionArgs {
    /// Plan entries kept per token (K).
    #[arg(long, default_value_t = DetectionConfig::default().top_k)]
    top_k: usize,
    /// Entropic regularisation ε of the transport.
    #[arg(long, default_value_t = DetectionConfig::default().epsilon)]
    epsilon: f32,
    /// Sinkhorn iteration cap.
    #[arg(long, default_value_t = DetectionConfig::default().sinkhorn_iters)]
    sinkhorn_iters: u32,
    /// Sinkhorn stopping tolerance (mean absolute change of the row scaling).
    #[arg(long, default_value_t = DetectionConfig::default().sinkhorn_tol)]
    sinkhorn_tol: f32,
    /// How subspaces are mixed per token: embeddings or probabilities.
    #[arg(long, default_value = "embeddings")]
    mix: Mix,
    /// Image score: global, or fused (½ (global + map maximum)).
    #[arg(long, default_value = "global")]
    score: ScoreMode,
    /// Token assignment: ot (transport, then top-K), greedy (each token to its most similar
    /// subspace; the paper's TokenCLIP-Van) or uniform (every subspace equally).
    #[arg(long, default_value = "ot")]
    assign: Assign,
    /// Softmax temperature τ.
    #[arg(long, default_value_t = DetectionConfig::default().temperature)]
    temperature: f32,
    /// σ of the Gaussian filter on the map (0: none).
    #[arg(long, default_value_t = DetectionConfig::default().sigma)]
    sigma: f32,
}

impl DetectionArgs {
    /// The configuration these flags describe.
    pub fn config(&self) -> DetectionConfig {
        DetectionConfig {
            temperature: self.temperature,
            sigma: self.sigma,
            top_k: self.top_k,
            epsilon: self.epsilon,
            sinkhorn_iters: self.sinkhorn_iters,
            sinkhorn_tol: self.sinkhorn_tol,
            mix: self.mix,
            score: self.score,
            assign: self.assign,
        }
    }
}

/// Runs the import and prints what was recognised.
pub fn run(args: &ImportArgs) -> anyhow::Result<()> {
    let mut opts = ImportOptions::default();
    opts.dtype = args.dtype;
    opts.activation = args.activation;
    opts.image_size = args.image_size;
    opts.dpam_start = args.dpam_start;
    opts.feature_layers = args.feature_layers.clone();
    opts.vision_only = args.vision_only;
    opts.detection = args.detection.config();
    opts.prompts = args.prompts.as_ref().map(|p| match p.as_str() {
        "ensemble" => PromptSource::Ensemble { class_name: args.class_name.clone() },
        path => PromptSource::File(path.into()),
    });
    let config = import_clip(&args.clip, &args.out, &opts)
        .with_context(|| format!("import of {} failed", args.clip.display()))?;
    println!("imported {} → {}", args.clip.display(), args.out.display());
    super::info::print_config(&config);
    Ok(())
}
