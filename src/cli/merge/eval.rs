//! `eval` shards: the manifest and trailer of `OUT/shards/eval.I-of-N.tcshard`
//! (`tokenclip::eval::partial` holds the file format) and their merge into the report a single
//! `eval` run writes (docs/SHARDING.md).
//!
//! The merge reads the dataset again from the folder the shards recorded (so the masks can be
//! read) and refuses it if its listing changed since; then it replays every shard's records, in
//! index order, into the evaluator exactly as a single run hands it its results, and writes
//! `report.md`, `report.json`, `report.csv` and (if the shards ran with `--plots`) `plots/`.
//! The report's backend is the shards' (distinct ones joined by `; ` when they differ); the
//! few-shot references that could not be read are the union of the shards'.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokenclip::eval::dataset::{Dataset, Sample};
use tokenclip::eval::evaluate::{EvalOptions, Evaluator};
use tokenclip::eval::partial::{PartialReader, PartialRecord};
use tokenclip::eval::report::{Report, RunInfo};
use tokenclip::eval::AuproMode;
use tokenclip::io::output::ensure_dir;
use tokenclip::shard::{Fingerprint, ShardInfo, ShardSpec};

/// `format` of an eval shard's manifest.
pub const FORMAT: &str = "tokenclip-eval-shard";

/// The manifest at the head of an eval shard file (JSON).
#[derive(Debug, Serialize, Deserialize)]
pub struct EvalManifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// 1.
    pub format_version: u32,
    /// Which shard.
    pub shard: ShardSpec,
    /// What run it belongs to (`model`, `dataset`, `info`, `options`).
    pub fingerprint: Fingerprint,
    /// Its range of the test images in evaluation order.
    pub range: [usize; 2],
    /// The number of test images.
    pub images: usize,
    /// `--classes` (empty: all).
    pub classes: Vec<String>,
    /// `--aupro`.
    pub aupro: AuproMode,
    /// `--plots`.
    pub plots: bool,
    /// The report's run information, without backend and unreadable references (the trailer's).
    pub info: RunInfo,
}

/// The trailer at the end of an eval shard file (JSON).
#[derive(Debug, Serialize, Deserialize)]
pub struct EvalTrailer {
    /// The backend that ran (or was opened, when every result was cached).
    pub backend: String,
    /// Drawn few-shot references that could not be read, relative to the dataset folder.
    pub unreadable: Vec<String>,
}

/// A digest of the dataset as read (classes, every test image with label, mask and defect type,
/// the problems) and its number of images.
pub fn dataset_digest(ds: &Dataset) -> String {
    let json = serde_json::to_string(ds).unwrap_or_default();
    let h = tokenclip::io::cache::Fnv64::default().str(&json).finish();
    format!("{h:016x} ({} images)", ds.len())
}

struct Shard {
    file: PathBuf,
    manifest: EvalManifest,
    reader: PartialReader,
}

fn open(file: &Path) -> anyhow::Result<Shard> {
    let reader = PartialReader::open(file)?;
    let manifest: EvalManifest = serde_json::from_str(&reader.manifest)
        .with_context(|| format!("shard file {}: damaged manifest", file.display()))?;
    if manifest.format != FORMAT || manifest.format_version != 1 {
        anyhow::bail!(
            "shard file {}: format {} v{}, expected {FORMAT} v1",
            file.display(),
            manifest.format,
            manifest.format_version
        );
    }
    let want = manifest.shard.range(manifest.images);
    if manifest.range != [want.start, want.end] {
        anyhow::bail!(
            "shard file {}: damaged (range {:?} for shard {})",
            file.display(),
            manifest.range,
            manifest.shard
        );
    }
    Ok(Shard { file: file.to_path_buf(), manifest, reader })
}

/// The next record of the shards in order, moving to the next shard at the end of one.
fn next(shards: &mut [Shard], at: &mut usize) -> anyhow::Result<Option<PartialRecord>> {
    while *at < shards.len() {
        if let Some(r) = shards[*at].reader.next_record()? {
            return Ok(Some(r));
        }
        *at += 1;
    }
    Ok(None)
}

/// Merges eval shards into `out`'s report, byte for byte what a single run writes.
///
/// # Errors
/// A mix of runs, missing or overlapping shards, a dataset changed since the shards ran, a
/// damaged shard file (nothing written in all these cases); a write failing. [`PartialFailure`]
/// (exit 2) when something was skipped, as a single run.
pub fn merge(out: &Path, files: &[PathBuf]) -> anyhow::Result<()> {
    let mut shards = files.iter().map(|f| open(f)).collect::<anyhow::Result<Vec<_>>>()?;
    let infos = shards
        .iter()
        .map(|s| ShardInfo {
            name: s.file.display().to_string(),
            spec: s.manifest.shard,
            fingerprint: s.manifest.fingerprint.clone(),
        })
        .collect();
    tokenclip::shard::check_set(infos, "")?;
    shards.sort_by_key(|s| s.manifest.shard.index);
    let m = &shards[0].manifest;
    let data = PathBuf::from(&m.info.data);
    let mut ds = Dataset::open(&data, Some(m.info.layout))
        .with_context(|| format!("reading the dataset the shards ran on ({})", data.display()))?;
    if !m.classes.is_empty() {
        ds.retain_classes(&m.classes)?;
    }
    let (now, then) = (dataset_digest(&ds), m.fingerprint.get("dataset").cloned().unwrap_or_default());
    if now != then {
        anyhow::bail!(
            "the dataset in {} is not the one the shards ran on (its listing is {now}, the shards' {then}): run the \
             shards again",
            data.display()
        );
    }
    let (mode, plots, mut info) = (m.aupro, m.plots, m.info.clone());
    let mut ev = Evaluator::new(&ds.root, EvalOptions::default().with_aupro(mode).with_pooled(plots));
    let mut at = 0;
    for class in &ds.classes {
        let mut run = ev.class(class);
        for sample in &class.samples {
            let result = take(&mut shards, &mut at, &ds, sample)?;
            for note in run.add(sample, result.as_ref().map_err(Clone::clone)) {
                eprintln!("{note}");
            }
        }
        for note in run.finish() {
            eprintln!("{note}");
        }
    }
    if let Some(extra) = next(&mut shards, &mut at)? {
        anyhow::bail!("the shards hold more results than the dataset has images (first extra: {extra:?})");
    }
    let mut backends: Vec<String> = Vec::new();
    let mut unreadable: Vec<String> = Vec::new();
    for s in &shards {
        let text = s.reader.trailer.as_deref().unwrap_or_default();
        let t: EvalTrailer =
            serde_json::from_str(text).with_context(|| format!("shard file {}: damaged trailer", s.file.display()))?;
        if !backends.contains(&t.backend) {
            backends.push(t.backend);
        }
        for u in t.unreadable {
            if !unreadable.contains(&u) {
                unreadable.push(u);
            }
        }
    }
    info.backend = backends.join("; ");
    if let Some(f) = info.few_shot.as_mut() {
        f.unreadable = unreadable;
    }
    let report = Report::new(info, mode, ev.finish(), ds.all_problems());
    ensure_dir(out)?;
    crate::cli::eval::write_report(&report, out, plots)?;
    eprintln!("{} shards merged; report in {} (report.md, report.json, report.csv)", shards.len(), out.display());
    crate::cli::eval::check_complete(&report)
}

/// The shards' record for `sample`, which must be the next one.
fn take(
    shards: &mut [Shard],
    at: &mut usize,
    ds: &Dataset,
    sample: &Sample,
) -> anyhow::Result<Result<tokenclip::eval::cache::CachedResult, String>> {
    let key = sample.image.strip_prefix(&ds.root).unwrap_or(&sample.image).display().to_string();
    let shard = |at: usize| shards.get(at).map_or_else(|| "the shards".to_string(), |s| s.file.display().to_string());
    let name = shard(*at);
    match next(shards, at)? {
        Some(PartialRecord::Result { key: k, result }) if k == key => Ok(Ok(result)),
        Some(PartialRecord::Failure { key: k, reason }) if k == key => Ok(Err(reason)),
        Some(PartialRecord::Result { key: k, .. } | PartialRecord::Failure { key: k, .. }) => {
            anyhow::bail!("{name}: holds {k} where {key} was expected: damaged or of another dataset")
        }
        None => anyhow::bail!("the shards end before {key}: damaged shard files"),
    }
}
