//! [`ShardError`]: what resolving a shard and checking a set of shards report.

use super::{K8S_INDEX_ENV, SLURM_INDEX_ENV, TOTAL_ENV};

/// Why a shard cannot be found or a set of shards cannot be merged. Messages name the flag,
/// variable or file and say what would work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ShardError {
    /// `--shard` is not `I/N`.
    #[error("--shard {value}: expected I/N with 0-based index I below the total N, e.g. --shard 0/4 … 3/4")]
    Malformed {
        /// What was given.
        value: String,
    },
    /// N is 0.
    #[error("{from}: the number of shards must be at least 1")]
    ZeroTotal {
        /// The flag or variable that gave it.
        from: String,
    },
    /// I ≥ N.
    #[error("{from}: shard index {index} is out of range for {count} shards (indices are 0-based: 0 … {last})", last = count - 1)]
    IndexOutOfRange {
        /// The flag or variable that gave it.
        from: String,
        /// The index.
        index: usize,
        /// The total.
        count: usize,
    },
    /// A number in the environment or in `--shards` cannot be read.
    #[error("{var}={value}: not a whole number")]
    BadNumber {
        /// The variable or flag.
        var: String,
        /// Its value.
        value: String,
    },
    /// The environment gives an index but nothing gives the total.
    #[error("{var} is set ({value}) but the number of shards is not: give --shards N or set {TOTAL_ENV}=N (or unset {var} to run unsharded)")]
    IndexWithoutTotal {
        /// The index variable.
        var: &'static str,
        /// Its value.
        value: String,
    },
    /// A total is given but no index.
    #[error("{from} gives {count} shards but not which one this is: give --shard I/{count}, or set {K8S_INDEX_ENV} or {SLURM_INDEX_ENV}")]
    TotalWithoutIndex {
        /// The flag or variable that gave the total.
        from: String,
        /// The total.
        count: usize,
    },
    /// Shards of different totals.
    #[error("{a} is shard {ia} of {na} but {b} is shard {ib} of {nb}: shards of different runs cannot be merged")]
    MixedTotal {
        /// One shard.
        a: String,
        /// Its index.
        ia: usize,
        /// Its total.
        na: usize,
        /// Another.
        b: String,
        /// Its index.
        ib: usize,
        /// Its total.
        nb: usize,
    },
    /// Shards whose fingerprints differ.
    #[error("{a} and {b} are shards of different runs: their fingerprints differ in `{part}` ({} vs {})", .values.0, .values.1)]
    Mismatch {
        /// One shard.
        a: String,
        /// Another.
        b: String,
        /// The fingerprint part that differs (`model`, `inputs`, `dataset`, `options`, …).
        part: String,
        /// Its value in `a`, then in `b` (boxed: keeps the error small).
        values: Box<(String, String)>,
    },
    /// The same index twice.
    #[error("shard {index} of {count} is given twice ({a} and {b}): shards overlap")]
    Overlap {
        /// The index.
        index: usize,
        /// The total.
        count: usize,
        /// One file.
        a: String,
        /// The other.
        b: String,
    },
    /// Indices missing.
    #[error("missing shards of {count}: {} (0-based; run them, or name their files or folders)", list(missing))]
    Missing {
        /// The total.
        count: usize,
        /// The missing indices.
        missing: Vec<usize>,
    },
    /// No shard at all.
    #[error("no shard files found in: {where_}")]
    NoShards {
        /// What was searched.
        where_: String,
    },
    /// A shard file cannot be read or is damaged.
    #[error("shard file {path}: {what}")]
    File {
        /// The file.
        path: String,
        /// What is wrong.
        what: String,
    },
}

fn list(v: &[usize]) -> String {
    v.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")
}
