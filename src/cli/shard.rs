//! `--shard I/N` and `--shards N` for `detect` and `eval` (docs/SHARDING.md): which shard this
//! process is (`tokenclip::shard`: 0-based, flag over environment, contiguous ranges), where its
//! file goes, and the fingerprint parts every shard records so `merge` refuses a mix of runs.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use tokenclip::io::cache::Fnv64;
use tokenclip::shard::ShardSpec;

/// The sharding options of `detect` and `eval`.
#[derive(Debug, Args)]
pub struct ShardArgs {
    /// Run only shard I of N (0-based: 0/N … N-1/N) of the ordered input list and write that
    /// shard's results to OUT/shards/ for `tokenclip merge`; default: JOB_COMPLETION_INDEX or
    /// SLURM_ARRAY_TASK_ID (minus SLURM_ARRAY_TASK_MIN) with --shards N or TOKENCLIP_SHARDS.
    #[arg(long, value_name = "I/N")]
    shard: Option<String>,
    /// The number of shards when the index comes from the environment (else TOKENCLIP_SHARDS).
    #[arg(long, value_name = "N", conflicts_with = "shard")]
    shards: Option<usize>,
}

impl ShardArgs {
    /// This process's shard, or `None` for an unsharded run.
    ///
    /// # Errors
    /// Every [`tokenclip::shard::ShardError`] of [`ShardSpec::resolve`].
    pub fn resolve(&self) -> anyhow::Result<Option<ShardSpec>> {
        let env = |k: &str| std::env::var(k).ok();
        Ok(ShardSpec::resolve(self.shard.as_deref(), self.shards, &env)?)
    }
}

/// The folder shard files go to: `OUT/shards`.
pub fn shard_dir(out: &Path) -> PathBuf {
    out.join("shards")
}

/// The file of shard `spec` of kind `stem` (`scores`, `eval`) with extension `ext`:
/// `OUT/shards/STEM.I-of-N.EXT`.
pub fn shard_file(out: &Path, stem: &str, spec: ShardSpec, ext: &str) -> PathBuf {
    shard_dir(out).join(format!("{stem}.{spec}.{ext}"))
}

/// A digest of the model file's bytes (FNV-1a 64 over its size and whole content, as hex): the
/// same model copied elsewhere has the same digest, a retrained one a different one.
///
/// # Errors
/// If the file cannot be read.
pub fn model_digest(path: &Path) -> anyhow::Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("cannot read the model {}", path.display()))?;
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut h = Fnv64::default().u64(len);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).with_context(|| format!("cannot read the model {}", path.display()))?;
        if n == 0 {
            break;
        }
        h = h.bytes(&buf[..n]);
    }
    Ok(format!("{:016x}", h.finish()))
}

/// A digest of `items` (each mixed in length-prefixed) with their count, as `HEX (COUNT WHAT)`.
pub fn list_digest<'a>(items: impl IntoIterator<Item = &'a str>, what: &str) -> String {
    let mut h = Fnv64::default();
    let mut n = 0usize;
    for s in items {
        h = h.str(s);
        n += 1;
    }
    format!("{:016x} ({n} {what})", h.finish())
}
