//! `eval --shard I/N`: detects the shard's contiguous part of the test images (evaluation order)
//! and writes `OUT/shards/eval.I-of-N.tcshard` (`tokenclip::eval::partial`): the manifest
//! (fingerprint, run information, options), one record per image, and at the end the backend
//! that ran and the few-shot references it could not read. No metric is computed here:
//! `tokenclip merge` does that over all shards (docs/SHARDING.md).

use std::path::Path;

use tokenclip::clip::model_file::ModelFile;
use tokenclip::eval::cache::ResultCache;
use tokenclip::eval::dataset::Dataset;
use tokenclip::eval::partial::PartialWriter;
use tokenclip::eval::AuproMode;
use tokenclip::io::output::ensure_dir;
use tokenclip::shard::{Fingerprint, ShardSpec};
use tokenclip::Device;

use super::run as runner;
use super::{run_info, shots, AuproArg, EvalArgs};
use crate::cli::detect::PartialFailure;
use crate::cli::merge::eval::{dataset_digest, EvalManifest, EvalTrailer, FORMAT};
use crate::cli::shard::{model_digest, shard_dir, shard_file};
use crate::cli::Global;

/// What the shard runs on.
pub struct ShardRun<'a> {
    /// Global options.
    pub g: &'a Global,
    /// `eval`'s arguments.
    pub args: &'a EvalArgs,
    /// Which shard.
    pub spec: ShardSpec,
    /// The dataset (classes retained).
    pub dataset: &'a Dataset,
    /// The few-shot draw, with `--shots`.
    pub drawn: Option<&'a shots::Drawn>,
    /// The model file's path.
    pub model: &'a Path,
    /// The model.
    pub file: &'a ModelFile,
}

/// The fingerprint parts of this run: `model` (the file's bytes), `dataset` (the test images,
/// labels, masks and problems), `info` (what the report's header shows) and `options`.
fn fingerprint(r: &ShardRun<'_>, mode: AuproMode) -> anyhow::Result<Fingerprint> {
    let a = r.args;
    let mut f = Fingerprint::new();
    f.insert("model".into(), model_digest(r.model)?);
    f.insert("dataset".into(), dataset_digest(r.dataset));
    f.insert(
        "info".into(),
        format!(
            "model={} data={} layout={} S={}",
            r.model.display(),
            a.data.display(),
            r.dataset.layout,
            r.file.config.input_size
        ),
    );
    f.insert(
        "options".into(),
        format!(
            "aupro={mode:?} plots={} classes={:?} shots={} seed={} memory={} precision={:?}",
            a.plots,
            a.classes,
            a.shots,
            a.seed,
            a.memory.key(),
            r.g.precision
        ),
    );
    Ok(f)
}

/// Runs the shard and writes its file.
///
/// # Errors
/// As `eval`'s fatal errors, and the shard file failing to be written. [`PartialFailure`] (exit
/// 2) when some of the shard's images failed (their records say why; the file is written).
pub fn run(
    r: ShardRun<'_>,
    device: Device,
    failover: bool,
    cache: Option<&ResultCache>,
    opened: String,
    few_shot: Option<runner::FewShot<'_>>,
) -> anyhow::Result<()> {
    let mode = match r.args.aupro {
        AuproArg::Sampled => AuproMode::Sampled,
        AuproArg::Exact => AuproMode::Exact,
    };
    let range = r.spec.range(r.dataset.len());
    let info = run_info(r.args, r.model, r.file, r.dataset, r.drawn, &[], String::new());
    let manifest = EvalManifest {
        format: FORMAT.into(),
        format_version: 1,
        shard: r.spec,
        fingerprint: fingerprint(&r, mode)?,
        range: [range.start, range.end],
        images: r.dataset.len(),
        classes: r.args.classes.clone(),
        aupro: mode,
        plots: r.args.plots,
        info,
    };
    ensure_dir(&shard_dir(&r.args.out))?;
    let path = shard_file(&r.args.out, "eval", r.spec, "tcshard");
    let mut writer = PartialWriter::create(&path, &serde_json::to_string_pretty(&manifest)?)?;
    let root = &r.dataset.root;
    let mut sink = |sample: &tokenclip::eval::dataset::Sample, result: Result<_, String>| -> anyhow::Result<()> {
        let key = sample.image.strip_prefix(root).unwrap_or(&sample.image).display().to_string();
        match result {
            Ok(res) => writer.result(&key, &res)?,
            Err(reason) => writer.failure(&key, &reason)?,
        }
        Ok(())
    };
    let (stats, ran, unreadable) =
        runner::detect_range(device, failover, r.file, r.dataset, cache, few_shot, range.clone(), &mut sink)?;
    let rel = |p: &std::path::PathBuf| p.strip_prefix(root).unwrap_or(p).display().to_string();
    let trailer = EvalTrailer { backend: ran.unwrap_or(opened), unreadable: unreadable.iter().map(rel).collect() };
    writer.commit(&serde_json::to_string(&trailer)?)?;
    eprintln!("{stats}");
    eprintln!(
        "shard {}: images {}..{} of {}, results in {} (tokenclip merge writes the report)",
        r.spec,
        range.start,
        range.end,
        r.dataset.len(),
        path.display()
    );
    if stats.failed > 0 {
        return Err(PartialFailure::new(format!(
            "{} of the shard's {} images failed (see the messages above; the merged report lists them); the shard \
             file was written",
            stats.failed,
            range.len()
        ))
        .into());
    }
    Ok(())
}
