//! `tokenclip merge`: joins the shards of a `detect --shard` or `eval --shard` run into exactly
//! the files a single run writes (docs/SHARDING.md).
//!
//! `merge --out OUT [SHARD...]`: each SHARD is a shard file (`scores.I-of-N.json` of `detect`,
//! `eval.I-of-N.tcshard` of `eval`), or a folder whose `shards/` sub-folder (or, without one, the
//! folder itself) holds them; with no SHARD, `OUT` is searched. Every shard of the run must be
//! there, each once, all of one run (same N, same fingerprint); otherwise nothing is written and
//! the message names what is missing or different. The exit status is the single run's: 0, or 2
//! when some input failed or (eval) something was skipped, 1 on an error.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use tokenclip::shard::ShardError;

pub mod eval;
pub mod scores;

/// `tokenclip merge` arguments.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Where the merged files go: detect's scores.csv and scores.json (with the overlays and maps
    /// of shards kept elsewhere copied in), or eval's report.md, report.json, report.csv and plots/.
    #[arg(long)]
    out: PathBuf,
    /// Shard files, or folders holding them (in `shards/` or directly); default: OUT.
    shards: Vec<PathBuf>,
}

/// Which command made a shard file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Detect,
    Eval,
}

impl Kind {
    /// The kind a file name says (`scores.I-of-N.json`, `eval.I-of-N.tcshard`).
    fn of(path: &Path) -> Option<Kind> {
        let name = path.file_name()?.to_str()?;
        let (stem, ext, spec) = match name.strip_suffix(".json") {
            Some(rest) => (Kind::Detect, "scores.", rest),
            None => (Kind::Eval, "eval.", name.strip_suffix(".tcshard")?),
        };
        let spec = spec.strip_prefix(ext)?;
        let (i, n) = spec.split_once("-of-")?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        (digits(i) && digits(n)).then_some(stem)
    }
}

/// Runs the merge.
pub fn run(args: &MergeArgs) -> anyhow::Result<()> {
    let sources = if args.shards.is_empty() { vec![args.out.clone()] } else { args.shards.clone() };
    let files = find_shards(&sources)?;
    let searched = sources.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
    let Some(first) = files.first() else {
        return Err(ShardError::NoShards { where_: searched }.into());
    };
    let kind = Kind::of(first).unwrap_or(Kind::Detect);
    if let Some(other) = files.iter().find(|f| Kind::of(f) != Some(kind)) {
        anyhow::bail!(
            "{} and {} are shards of different commands (detect and eval): merge one run at a time",
            first.display(),
            other.display()
        );
    }
    match kind {
        Kind::Detect => scores::merge(&args.out, &files),
        Kind::Eval => eval::merge(&args.out, &files),
    }
}

/// The shard files among `sources`, each once (by canonical path), files in the order given and
/// each folder's sorted by name.
fn find_shards(sources: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for src in sources {
        let found = if src.is_dir() {
            let dir = if src.join("shards").is_dir() { src.join("shards") } else { src.clone() };
            let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
                .with_context(|| format!("cannot list {}", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && Kind::of(p).is_some())
                .collect();
            v.sort();
            v
        } else if src.is_file() {
            if Kind::of(src).is_none() {
                anyhow::bail!(
                    "{}: not a shard file (expected scores.I-of-N.json or eval.I-of-N.tcshard)",
                    src.display()
                );
            }
            vec![src.clone()]
        } else {
            anyhow::bail!("no such file or directory: {}", src.display());
        };
        for f in found {
            if seen.insert(std::fs::canonicalize(&f).unwrap_or_else(|_| f.clone())) {
                out.push(f);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_files_are_known_by_name() {
        let kind = |n: &str| Kind::of(Path::new(n));
        assert_eq!(kind("out/shards/scores.0-of-3.json"), Some(Kind::Detect));
        assert_eq!(kind("eval.12-of-16.tcshard"), Some(Kind::Eval));
        for not in
            ["scores.json", "scores.a-of-3.json", ".scores.0-of-3.json.tmp-1-0", "eval.0-of-3.json", "x.0-of-1.tcshard"]
        {
            assert_eq!(kind(not), None, "{not}");
        }
    }
}
