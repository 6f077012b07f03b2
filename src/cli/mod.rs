//! Argument parsing and the subcommands.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokenclip::backend::cpu::{CpuBackend, Precision};
use tokenclip::BackendChoice;

mod bench;
mod bench_batch;
mod bench_detect;
mod bench_model;
mod bench_profile;
mod bench_train;
mod detect;
mod embed;
mod eval;
mod import;
mod info;
mod inputs;
mod merge;
mod models;
mod progress;
mod reference;
mod scores;
mod serve;
mod shard;
mod train;

/// Zero-shot anomaly detection with TokenCLIP on WebGPU or the CPU.
#[derive(Debug, Parser)]
#[command(name = "tokenclip", version, about)]
struct Cli {
    /// Which backend runs the ops: a GPU adapter if one works (auto), the GPU, or the CPU.
    #[arg(long, global = true, default_value = "auto")]
    backend: BackendChoice,
    /// Use the GPU adapter whose name contains this (case-insensitive); also TOKENCLIP_ADAPTER.
    #[arg(long, global = true)]
    adapter: Option<String>,
    /// A registry file of named models (added to the built-in names); also TOKENCLIP_REGISTRY.
    #[arg(long, global = true)]
    registry: Option<std::path::PathBuf>,
    /// Never touch the network: named models must already be in the cache (as HF_HUB_OFFLINE=1).
    #[arg(long, global = true)]
    offline: bool,
    /// Arithmetic of the CPU backend's large products: f32, or bf16 (activations and weights
    /// rounded to bfloat16, sums in f32; AVX512-BF16 where the CPU has it), for detect, eval,
    /// embed and bench; bf16 runs on the CPU. import and train compute in f32.
    #[arg(long, global = true, default_value = "f32")]
    precision: Precision,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List GPU adapters, the one chosen, its limits and features; with --model, the model's configuration.
    Info(info::InfoArgs),
    /// Turn a CLIP checkpoint into a model file.
    Import(import::ImportArgs),
    /// Write CLIP image and text embeddings (as open_clip's encode_image / encode_text).
    Embed(embed::EmbedArgs),
    /// Anomaly maps and scores for images, folders and globs.
    Detect(detect::DetectArgs),
    /// Write a model file with a few-shot memory of normal images of the product inside.
    Reference(reference::ReferenceArgs),
    /// Evaluate on a test set (MVTec AD, VisA or a folder layout): the papers' metrics and a report.
    Eval(eval::EvalArgs),
    /// Join the shards of a `detect --shard` or `eval --shard` run into the files one run writes.
    Merge(merge::MergeArgs),
    /// Learn TokenCLIP prompts on a dataset with masks (features cached; text side on the CPU).
    Train(train::TrainArgs),
    /// Measure op throughput (`bench ops`) or image encoding with a model (`bench --model M`).
    Bench(bench::BenchArgs),
    /// List the named models: sources, sizes, licences, and which are in the cache.
    Models(models::ModelsArgs),
    /// Download, verify and convert named models ahead of use (then copy the caches to go offline).
    Fetch(models::FetchArgs),
    /// Serve a model over HTTP: the Open Inference Protocol v2 (KServe, Triton) and POST /detect.
    Serve(serve::ServeArgs),
}

/// Options every subcommand shares.
pub struct Global {
    /// `--backend`.
    pub backend: BackendChoice,
    /// `--adapter` or the environment.
    pub gpu: tokenclip::backend::gpu::GpuOptions,
    /// `--registry`.
    pub registry: Option<std::path::PathBuf>,
    /// `--offline`.
    pub offline: bool,
    /// `--precision`.
    pub precision: Precision,
}

/// Parses the command line, runs the subcommand, prints any error and returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut gpu = match tokenclip::backend::gpu::GpuOptions::from_env() {
        Ok(gpu) => gpu,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(name) = cli.adapter {
        gpu = gpu.with_adapter(name);
    }
    let global =
        Global { backend: cli.backend, gpu, registry: cli.registry, offline: cli.offline, precision: cli.precision };
    let result = match cli.command {
        Command::Info(args) => info::run(&global, &args),
        Command::Import(args) => import::run(&args),
        Command::Embed(args) => embed::run(&global, &args),
        Command::Detect(args) => detect::run(&global, &args),
        Command::Reference(args) => reference::run(&global, &args),
        Command::Eval(args) => eval::run(&global, &args),
        Command::Merge(args) => merge::run(&args),
        Command::Train(args) => train::run(&global, &args),
        Command::Bench(args) => bench::run(&global, &args),
        Command::Models(args) => models::run_models(&global, &args),
        Command::Fetch(args) => models::run_fetch(&global, &args),
        Command::Serve(args) => serve::run(&global, &args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<detect::PartialFailure>().is_some() => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Opens the backend `--backend` asks for, saying on stderr when `auto` fell back to the CPU.
/// `--precision bf16` is the CPU backend's: `auto` takes the CPU for it, `gpu` is refused.
///
/// # Errors
/// `--backend gpu` with `--precision bf16`; the GPU failing to open under `--backend gpu`.
pub fn open_device(g: &Global) -> anyhow::Result<tokenclip::Device> {
    if g.precision == Precision::Bf16 {
        match g.backend {
            BackendChoice::Gpu => anyhow::bail!(
                "--precision bf16 runs on the CPU backend only (the GPU kernels are f32); use --backend cpu \
                 or drop --precision"
            ),
            BackendChoice::Auto => eprintln!("note: using the CPU backend (--precision bf16 runs on the CPU)"),
            BackendChoice::Cpu => {}
        }
        return Ok(tokenclip::Device::Cpu(CpuBackend::with_precision(Precision::Bf16)));
    }
    let (device, fallback) = pollster::block_on(tokenclip::Device::open(g.backend, &g.gpu))?;
    if let Some(reason) = fallback {
        eprintln!("note: using the CPU backend ({reason})");
    }
    Ok(device)
}

/// True when `e` is a GPU fault (device lost, out of memory, failed readback): fatal for the
/// whole run under `--backend gpu`, where every later image would fail the same way.
pub fn gpu_fault(e: &anyhow::Error) -> bool {
    e.chain().any(|c| match c.downcast_ref::<tokenclip::Error>() {
        Some(tokenclip::Error::Backend(b)) => b.is_device_fault(),
        _ => c.downcast_ref::<tokenclip::BackendError>().is_some_and(|b| b.is_device_fault()),
    })
}

/// Runs `$body` with `$be` bound to the device's backend, whichever it is.
macro_rules! with_backend {
    ($device:expr, $be:ident => $body:expr) => {
        match $device {
            tokenclip::Device::Gpu(g) => {
                let $be = &**g;
                $body
            }
            tokenclip::Device::Cpu(c) => {
                let $be = c;
                $body
            }
        }
    };
}
pub(crate) use with_backend;
