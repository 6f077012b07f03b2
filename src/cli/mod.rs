//! Argument parsing and the subcommands.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokenclip::BackendChoice;

mod bench;
mod info;

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
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List GPU adapters, the one chosen, its limits and features.
    Info,
    /// Measure op throughput (GFLOP/s) per backend.
    Bench(bench::BenchArgs),
}

/// Options every subcommand shares.
pub struct Global {
    /// `--backend`.
    pub backend: BackendChoice,
    /// `--adapter` or the environment.
    pub gpu: tokenclip::backend::gpu::GpuOptions,
}

/// Parses the command line, runs the subcommand, prints any error and returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut gpu = tokenclip::backend::gpu::GpuOptions::from_env();
    if let Some(name) = cli.adapter {
        gpu = gpu.with_adapter(name);
    }
    let global = Global { backend: cli.backend, gpu };
    let result = match cli.command {
        Command::Info => info::run(&global),
        Command::Bench(args) => bench::run(&global, &args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
