//! `detect` shards: the shard file `OUT/shards/scores.I-of-N.json` and its merge into the
//! `scores.csv` / `scores.json` a single run writes (docs/SHARDING.md).
//!
//! The file is JSON: `format` (`"tokenclip-detect-shard"`), `format_version` (1), `shard`
//! (`{"index", "count"}`), `fingerprint` (named parts: `model`, `inputs`, `options`), `range`
//! (`[start, end]` of the run's ordered input list), `images` (its length), `threshold`,
//! `problems` (the input arguments that matched nothing, as a single run prints them) and `rows`:
//! the shard's rows of `scores.json`, with `score`, `max` and `threshold` as text in Rust's
//! shortest round-trip form (so a merge gives back the very f32, NaN included, which a JSON number
//! cannot hold). Written atomically, after the shard's overlays and maps.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokenclip::io::output::{ensure_dir, write_atomic};
use tokenclip::shard::{Fingerprint, ShardInfo, ShardSpec};

use crate::cli::detect::PartialFailure;
use crate::cli::scores::{write_scores, ScoreRow};

/// `format` of a detect shard file.
pub const FORMAT: &str = "tokenclip-detect-shard";

/// A detect shard file.
#[derive(Debug, Serialize, Deserialize)]
pub struct ScoresShard {
    format: String,
    format_version: u32,
    /// Which shard.
    pub shard: ShardSpec,
    /// What run it belongs to.
    pub fingerprint: Fingerprint,
    range: [usize; 2],
    images: usize,
    threshold: Option<String>,
    problems: Vec<String>,
    rows: Vec<ShardRow>,
}

/// A [`ScoreRow`] with its floats as exact text.
#[derive(Debug, Serialize, Deserialize)]
struct ShardRow {
    path: String,
    score: Option<String>,
    max: Option<String>,
    flagged: Option<bool>,
    overlay: Option<String>,
    map: Option<String>,
    error: Option<String>,
}

fn float_text(v: Option<f32>) -> Option<String> {
    v.map(|v| v.to_string())
}

fn text_float(v: &Option<String>, what: &str) -> anyhow::Result<Option<f32>> {
    v.as_deref().map(|s| s.parse::<f32>().with_context(|| format!("{what} `{s}` is not a number"))).transpose()
}

/// What a detect shard ran on, for [`write_shard`].
pub struct ShardRun<'a> {
    /// The shard.
    pub spec: ShardSpec,
    /// The run's fingerprint.
    pub fingerprint: Fingerprint,
    /// Its range of the ordered input list, and the list's length.
    pub range: std::ops::Range<usize>,
    /// The list's length.
    pub images: usize,
    /// `--threshold`.
    pub threshold: Option<f32>,
    /// The input problems of the whole run.
    pub problems: &'a [String],
}

/// Writes `out/shards/scores.I-of-N.json` for `rows` (atomically) and returns its path.
///
/// # Errors
/// If the folder or file cannot be written.
pub fn write_shard(out: &Path, run: ShardRun<'_>, rows: &[ScoreRow]) -> anyhow::Result<PathBuf> {
    let path = crate::cli::shard::shard_file(out, "scores", run.spec, "json");
    ensure_dir(&crate::cli::shard::shard_dir(out))?;
    let shard = ScoresShard {
        format: FORMAT.into(),
        format_version: 1,
        shard: run.spec,
        fingerprint: run.fingerprint,
        range: [run.range.start, run.range.end],
        images: run.images,
        threshold: float_text(run.threshold),
        problems: run.problems.to_vec(),
        rows: rows
            .iter()
            .map(|r| ShardRow {
                path: r.path.clone(),
                score: float_text(r.score),
                max: float_text(r.max),
                flagged: r.flagged,
                overlay: r.overlay.clone(),
                map: r.map.clone(),
                error: r.error.clone(),
            })
            .collect(),
    };
    let mut json = serde_json::to_vec_pretty(&shard).context("cannot serialise the shard file")?;
    json.push(b'\n');
    write_atomic(&path, &json)?;
    Ok(path)
}

/// Reads a detect shard file.
///
/// # Errors
/// If it cannot be read, is not a detect shard file or its range does not fit its rows.
pub fn read_shard(path: &Path) -> anyhow::Result<ScoresShard> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read shard file {}", path.display()))?;
    let s: ScoresShard = serde_json::from_slice(&bytes)
        .with_context(|| format!("shard file {} is not a detect shard file", path.display()))?;
    if s.format != FORMAT || s.format_version != 1 {
        anyhow::bail!("shard file {}: format {} v{}, expected {FORMAT} v1", path.display(), s.format, s.format_version);
    }
    let want = s.shard.range(s.images);
    if s.range != [want.start, want.end] || s.rows.len() != want.len() {
        anyhow::bail!("shard file {}: damaged ({} rows for range {:?})", path.display(), s.rows.len(), s.range);
    }
    Ok(s)
}

/// Where a shard's overlays and maps are: the folder above its `shards/` folder.
fn shard_root(file: &Path) -> PathBuf {
    let dir = file.parent().unwrap_or(Path::new("."));
    match dir.file_name() {
        Some(n) if n == "shards" => dir.parent().unwrap_or(Path::new(".")).to_path_buf(),
        _ => dir.to_path_buf(),
    }
}

/// Merges detect shards into `out/scores.csv` and `out/scores.json`, byte for byte what a single
/// run writes; overlays and maps of shards kept in another folder are copied into `out`.
///
/// # Errors
/// A mix of runs, missing or overlapping shards (nothing written then); a listed overlay or map
/// missing from its shard's folder; a write failing. [`PartialFailure`] (exit 2) when inputs
/// failed, as a single run.
pub fn merge(out: &Path, files: &[PathBuf]) -> anyhow::Result<()> {
    let mut shards = Vec::new();
    for f in files {
        shards.push((f.clone(), read_shard(f)?));
    }
    let infos = shards
        .iter()
        .map(|(f, s)| ShardInfo { name: f.display().to_string(), spec: s.shard, fingerprint: s.fingerprint.clone() })
        .collect();
    tokenclip::shard::check_set(infos, "")?;
    shards.sort_by_key(|(_, s)| s.shard.index);
    let threshold = text_float(&shards[0].1.threshold, "threshold")?;
    let mut rows = Vec::new();
    let mut copies = Vec::new();
    for (file, s) in &shards {
        let root = shard_root(file);
        let elsewhere = !same_dir(&root, out);
        for r in &s.rows {
            let row = ScoreRow {
                path: r.path.clone(),
                score: text_float(&r.score, "score")?,
                max: text_float(&r.max, "max")?,
                flagged: r.flagged,
                overlay: r.overlay.clone(),
                map: r.map.clone(),
                error: r.error.clone(),
            };
            for rel in [&row.overlay, &row.map].into_iter().flatten().filter(|_| elsewhere) {
                // Written by detect below its --out: a path leaving the folder is damage (or worse).
                if !Path::new(rel).components().all(|c| matches!(c, std::path::Component::Normal(_))) {
                    anyhow::bail!("{} lists {rel}, which is not a path inside its folder", file.display());
                }
                let from = root.join(rel);
                if !from.is_file() {
                    anyhow::bail!("{} lists {rel}, but {} is missing", file.display(), from.display());
                }
                copies.push((from, out.join(rel)));
            }
            rows.push(row);
        }
    }
    ensure_dir(out)?;
    for (from, to) in &copies {
        let bytes = std::fs::read(from).with_context(|| format!("cannot read {}", from.display()))?;
        if let Some(parent) = to.parent() {
            ensure_dir(parent)?;
        }
        write_atomic(to, &bytes)?;
    }
    let first = &shards[0].1;
    write_scores(out, &rows, threshold)?;
    let failed_rows = rows.iter().filter(|r| r.error.is_some()).count();
    for p in &first.problems {
        eprintln!("skipped: {p}");
    }
    eprintln!(
        "{} shards merged: {} images scored; scores.csv and scores.json in {}{}",
        shards.len(),
        rows.len() - failed_rows,
        out.display(),
        if copies.is_empty() { String::new() } else { format!(" ({} files copied from the shards)", copies.len()) }
    );
    let failed = failed_rows + first.problems.len();
    if failed > 0 {
        return Err(PartialFailure::new(format!(
            "{failed} of {} inputs failed (listed in scores.csv); the others were merged",
            rows.len() + first.problems.len()
        ))
        .into());
    }
    Ok(())
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}
