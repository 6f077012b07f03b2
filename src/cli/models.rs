//! `--model NAME|FILE|URL` for every command, and `tokenclip models` / `tokenclip fetch`: named
//! models listed, downloaded ahead (for an air-gapped machine: fetch, then copy the caches).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokenclip::hub::cache::HubConfig;
use tokenclip::hub::convert::{converted_path, ensure_model};
use tokenclip::hub::download::Reporter;
use tokenclip::hub::fetch::Fetcher;
use tokenclip::hub::resolve::{load_registry, resolve_model};
use tokenclip::hub::{FileSource, PromptsSpec, Registry};

use super::Global;

/// The hub settings of this run: the environment, plus `--offline`.
pub fn hub_config(g: &Global) -> HubConfig {
    let cfg = HubConfig::from_env();
    if g.offline {
        cfg.with_offline("--offline")
    } else {
        cfg
    }
}

/// The registry of this run: built-in names plus `--registry` / `TOKENCLIP_REGISTRY`.
pub fn registry(g: &Global) -> anyhow::Result<Registry> {
    Ok(load_registry(g.registry.as_deref())?)
}

/// The model file a `--model` value names, downloading and converting it on first use.
pub fn model_path(g: &Global, spec: &str) -> anyhow::Result<PathBuf> {
    let path = std::path::Path::new(spec);
    if path.exists() {
        return Ok(path.to_path_buf());
    }
    let report = TermReporter::new();
    Ok(resolve_model(spec, &registry(g)?, &hub_config(g), &report)?)
}

/// Download progress on stderr: a bar (bytes, rate, ETA) on a terminal, one line per file
/// otherwise.
pub struct TermReporter {
    tty: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl TermReporter {
    /// Bars only when stderr is a terminal.
    pub fn new() -> Self {
        TermReporter { tty: std::io::stderr().is_terminal(), bar: Mutex::new(None) }
    }
}

fn mib(b: u64) -> String {
    if b >= 1 << 30 {
        format!("{:.2} GiB", b as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
    }
}

impl Reporter for TermReporter {
    fn started(&self, what: &str, url: &str, total: Option<u64>, from: u64) {
        let resumed = if from > 0 { format!(", resuming at {}", mib(from)) } else { String::new() };
        let size = total.map(|t| format!(" ({})", mib(t))).unwrap_or_default();
        if !self.tty {
            eprintln!("downloading {what}{size} from {url}{resumed}");
            return;
        }
        let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{prefix} [{bar:25}] {bytes}/{total_bytes}, {binary_bytes_per_sec}, ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("#>-");
        bar.set_style(style);
        bar.set_prefix(what.to_string());
        bar.set_position(from);
        if let Ok(mut b) = self.bar.lock() {
            *b = Some(bar);
        }
    }

    fn progress(&self, done: u64) {
        if let Ok(b) = self.bar.lock() {
            if let Some(bar) = b.as_ref() {
                bar.set_position(done);
            }
        }
    }

    fn finished(&self, what: &str, bytes: u64, secs: f64) {
        if let Ok(mut b) = self.bar.lock() {
            if let Some(bar) = b.take() {
                bar.finish_and_clear();
            }
        }
        let rate = if secs > 0.0 { format!(", {}/s", mib((bytes as f64 / secs) as u64)) } else { String::new() };
        eprintln!("downloaded {what}: {} in {secs:.1} s{rate}", mib(bytes));
    }

    fn note(&self, msg: &str) {
        match self.bar.lock().ok().as_ref().and_then(|b| b.as_ref()) {
            Some(bar) => bar.println(msg),
            None => eprintln!("{msg}"),
        }
    }
}

/// `tokenclip models` arguments.
#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// Print the registry as JSON (names, sources, sizes, settings, cache state).
    #[arg(long)]
    json: bool,
}

fn size_text(s: Option<u64>) -> String {
    s.map(|b| format!("{:.0} MB", b as f64 / 1e6)).unwrap_or_else(|| "size not pinned".into())
}

/// Lists the known models: name, download size, whether it is converted already, sources and
/// licences.
pub fn run_models(g: &Global, args: &ModelsArgs) -> anyhow::Result<()> {
    let reg = registry(g)?;
    let cfg = hub_config(g);
    if args.json {
        let list: Vec<serde_json::Value> = reg
            .entries()
            .map(|e| {
                let path = converted_path(&cfg, e);
                serde_json::json!({
                    "name": e.name, "description": e.description, "licence": e.licence, "light": e.light,
                    "origin": e.origin, "clip": e.clip, "prompts": e.prompts, "import": e.import,
                    "download_bytes": e.download_size(), "converted": path.exists().then(|| path.display().to_string()),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    for e in reg.entries() {
        let path = converted_path(&cfg, e);
        let state =
            if path.exists() { "ready (converted, in the cache)" } else { "downloaded and converted on first use" };
        let default = if e.name == tokenclip::hub::DEFAULT_MODEL { " (default)" } else { "" };
        let light = if e.light { " (light: laptops and the browser)" } else { "" };
        println!("{}{default}{light}\n  {}", e.name, e.description);
        println!("  download: {}; {state}", size_text(e.download_size()));
        let file = |f: &FileSource| format!("{} [{}]", f.describe(), size_text(f.size()));
        println!("  CLIP: {}", file(&e.clip));
        match &e.prompts {
            PromptsSpec::File(f) => println!("  prompts: {}", file(f)),
            PromptsSpec::Ensemble(c) => println!("  prompts: training-free ensemble for \"{c}\""),
        }
        if let Some(l) = &e.licence {
            println!("  licence: {l}");
        }
        if e.origin != "built-in" {
            println!("  from: {}", e.origin);
        }
        println!();
    }
    println!(
        "caches: converted models in {}, hub files in {}",
        cfg.cache.join("models").display(),
        cfg.hf_cache.display()
    );
    Ok(())
}

/// `tokenclip fetch` arguments.
#[derive(Debug, Args)]
pub struct FetchArgs {
    /// Model names (see `tokenclip models`); default: the default model.
    names: Vec<String>,
    /// Every model in the registry.
    #[arg(long)]
    all: bool,
}

/// Downloads, verifies and converts models ahead of use.
pub fn run_fetch(g: &Global, args: &FetchArgs) -> anyhow::Result<()> {
    let reg = registry(g)?;
    let cfg = hub_config(g);
    let names = if args.all {
        reg.names()
    } else if args.names.is_empty() {
        vec![tokenclip::hub::DEFAULT_MODEL.to_string()]
    } else {
        args.names.clone()
    };
    let report = TermReporter::new();
    let fetcher = Fetcher::new(&cfg, &report);
    for name in names {
        let entry = reg
            .get(&name)
            .ok_or_else(|| tokenclip::hub::HubError::UnknownModel { name: name.clone(), known: reg.names() })?;
        let path = ensure_model(&fetcher, entry, &report)?;
        println!("{name}: {}", path.display());
    }
    Ok(())
}
