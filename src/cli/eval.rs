//! `tokenclip eval`: detection over a test set and the papers' metrics (DESIGN.md "CLI
//! contract", METHOD.md D).
//!
//! Reads the dataset (MVTec AD, VisA or the folder layout; see `tokenclip::eval::dataset`) and
//! says what it found, runs detection on every test image with a progress bar (each result cached
//! on disk, so an interrupted run resumes and a rerun detects nothing again), then prints the
//! table and writes `report.md`, `report.json`, `report.csv` and, with `--plots`, ROC and PR
//! curves under `plots/` into `--out`. Exit status: 0 when everything was evaluated, 2 when
//! something was skipped (the report says what), 1 on a fatal error.
//!
//! With `--shard I/N` (or the environment, docs/SHARDING.md) only shard I's contiguous part of the
//! test images in evaluation order is detected, into `OUT/shards/eval.I-of-N.tcshard`
//! (`tokenclip::eval::partial`); `tokenclip merge` computes the metrics and writes the report.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use tokenclip::backend::Backend;
use tokenclip::clip::model_file::ModelFile;
use tokenclip::eval::cache::ResultCache;
use tokenclip::eval::dataset::{Dataset, Layout};
use tokenclip::eval::evaluate::EvalOptions;
use tokenclip::eval::plots::write_plots;
use tokenclip::eval::report::{Report, RunInfo};
use tokenclip::eval::AuproMode;
use tokenclip::io::output::ensure_dir;

use super::detect::PartialFailure;
use super::{open_device, with_backend, Global};

mod run;
mod sharded;
mod shots;

/// `--layout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LayoutArg {
    /// Find out from the folder's contents.
    Auto,
    /// MVTec AD: `<class>/test/<defect>/`, masks in `<class>/ground_truth/<defect>/`.
    Mvtec,
    /// VisA: the test split of `split_csv/1cls.csv`.
    Visa,
    /// `<class>/good/` plus one folder per defect type, masks as `NAME_mask.png` beside images.
    Folder,
}

impl LayoutArg {
    /// The layout asked for (`None`: find out from the folder).
    pub fn layout(self) -> Option<Layout> {
        match self {
            LayoutArg::Auto => None,
            LayoutArg::Mvtec => Some(Layout::Mvtec),
            LayoutArg::Visa => Some(Layout::Visa),
            LayoutArg::Folder => Some(Layout::Folder),
        }
    }
}

/// `--aupro`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuproArg {
    /// AnomalyCLIP's 200 sampled thresholds (what the published tables use).
    Sampled,
    /// Every threshold, integrated exactly to FPR 0.3.
    Exact,
}

/// `tokenclip eval` arguments.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The model: a name (`tokenclip models`), a model file, or a URL of one; a name is
    /// downloaded and converted on first use, then read from the cache.
    #[arg(long, default_value = tokenclip::hub::DEFAULT_MODEL)]
    model: String,
    /// The dataset folder.
    #[arg(long)]
    data: PathBuf,
    /// The dataset's layout.
    #[arg(long, value_enum, default_value = "auto")]
    layout: LayoutArg,
    /// Evaluate only these classes (comma-separated).
    #[arg(long, value_delimiter = ',')]
    classes: Vec<String>,
    /// Report folder: report.md, report.json, report.csv, plots/ and (by default) cache/.
    #[arg(long, default_value = "tokenclip-eval")]
    out: PathBuf,
    /// Also draw ROC and precision-recall curves (PNG) per class and pooled over all classes.
    #[arg(long)]
    plots: bool,
    /// Which AUPRO the table shows (report.json has both).
    #[arg(long, value_enum, default_value = "sampled")]
    aupro: AuproArg,
    /// Where per-image results are cached (default: OUT/cache).
    #[arg(long, conflicts_with = "no_cache")]
    cache: Option<PathBuf>,
    /// Neither read nor write cached results.
    #[arg(long)]
    no_cache: bool,
    /// Few-shot: K normal training images per class (MVTec `train/good/`, VisA's train split,
    /// the folder layout's `train/good/`) become that class's memory; 0 is zero-shot.
    #[arg(long, default_value_t = 0)]
    shots: usize,
    /// The seed of the few-shot draw (the same seed draws the same images; 10 is APRIL-GAN's).
    #[arg(long, default_value_t = 10)]
    seed: u64,
    #[command(flatten)]
    memory: super::reference::MemoryArgs,
    #[command(flatten)]
    shard: super::shard::ShardArgs,
}

/// Runs the evaluation.
pub fn run(g: &Global, args: &EvalArgs) -> anyhow::Result<()> {
    let shard = args.shard.resolve()?;
    if args.shots == 0 {
        args.memory.refuse_without_memory("--shots K")?;
    }
    let layout = args.layout.layout();
    let mut dataset = Dataset::open(&args.data, layout)?;
    if !args.classes.is_empty() {
        dataset.retain_classes(&args.classes)?;
    }
    eprint!("{}", dataset.summary());
    let drawn = (args.shots > 0).then(|| shots::draw(&dataset, args.shots, args.seed)).transpose()?;
    let model = super::models::model_path(g, &args.model)?;
    let file = ModelFile::open(&model)?;
    ensure_dir(&args.out)?;
    let cache = if args.no_cache {
        None
    } else {
        let mut root = args.cache.clone().unwrap_or_else(|| args.out.join("cache"));
        // bf16 results differ from f32 ones (about 1e-3): they never share entries.
        if g.precision == tokenclip::backend::cpu::Precision::Bf16 {
            root = root.join("bf16");
        }
        if let Some(d) = &drawn {
            root = root.join(shots::cache_folder(d, args.shots, args.seed, &args.memory.key()));
        }
        Some(ResultCache::open(&root, &model)?)
    };
    let mode = match args.aupro {
        AuproArg::Sampled => AuproMode::Sampled,
        AuproArg::Exact => AuproMode::Exact,
    };
    let opts = EvalOptions::default().with_aupro(mode).with_pooled(args.plots);
    let device = open_device(g)?;
    let opened = with_backend!(&device, be => be.describe());
    let failover = g.backend == tokenclip::BackendChoice::Auto;
    let few_shot = drawn.as_ref().map(|d| run::FewShot { drawn: d, memory: &args.memory });
    if let Some(spec) = shard {
        let run =
            sharded::ShardRun { g, args, spec, dataset: &dataset, drawn: drawn.as_ref(), model: &model, file: &file };
        return sharded::run(run, device, failover, cache.as_ref(), opened, few_shot);
    }
    let (evaluation, stats, ran, unreadable) =
        run::evaluate_all(device, failover, &file, &dataset, cache.as_ref(), opts, few_shot)?;
    let info = run_info(args, &model, &file, &dataset, drawn.as_ref(), &unreadable, ran.unwrap_or(opened));
    let report = Report::new(info, mode, evaluation, dataset.all_problems());
    write_report(&report, &args.out, args.plots)?;
    eprintln!("{stats}");
    eprintln!("report in {} (report.md, report.json, report.csv)", args.out.display());
    if let Some(c) = &cache {
        eprintln!("cache in {}", c.dir().display());
    }
    check_complete(&report)
}

/// Writes `report` into `out` (and its plots with `plots`) and prints its table: what a single
/// run and a merge of shards both write, by the same code.
pub fn write_report(report: &Report, out: &std::path::Path, plots: bool) -> anyhow::Result<()> {
    report.write(out)?;
    if plots {
        let written = write_plots(&out.join("plots"), report)?;
        eprintln!("{} plots in {}", written.len(), out.join("plots").display());
    }
    print!("{}", report.text_table());
    Ok(())
}

/// Exit status 2 ([`PartialFailure`]) when the written report says something was skipped.
pub fn check_complete(report: &Report) -> anyhow::Result<()> {
    if !report.is_complete() {
        return Err(PartialFailure::new(format!(
            "not everything was evaluated: {} skips and {} dataset problems (see the messages above; report.md \
             lists them); the report was written",
            report.skipped.len(),
            report.dataset_problems.len()
        ))
        .into());
    }
    Ok(())
}

/// The report's run information (`backend`: the one that ran, or the one opened when every
/// result was cached).
fn run_info(
    args: &EvalArgs,
    model: &std::path::Path,
    file: &ModelFile,
    dataset: &Dataset,
    drawn: Option<&shots::Drawn>,
    unreadable: &[PathBuf],
    backend: String,
) -> RunInfo {
    let rel = |p: &std::path::Path| p.strip_prefix(&dataset.root).unwrap_or(p).display().to_string();
    let few_shot = drawn.map(|d| tokenclip::eval::report::FewShotRun {
        shots: args.shots,
        seed: args.seed,
        references: d.iter().map(|(c, paths)| (c.clone(), paths.iter().map(|p| rel(p)).collect())).collect(),
        unreadable: unreadable.iter().map(|p| rel(p)).collect(),
    });
    RunInfo {
        model: model.display().to_string(),
        input_size: file.config.input_size,
        data: args.data.display().to_string(),
        layout: dataset.layout,
        backend,
        few_shot,
    }
}
