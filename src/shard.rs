//! Sharding a run over N processes (docs/SHARDING.md): which part of the input a shard takes, how
//! its index and total are found, and the checks a merge makes before joining shards.
//!
//! **Indices are 0-based**: `--shard 0/4` … `--shard 3/4`, as Kubernetes Indexed Jobs number
//! `JOB_COMPLETION_INDEX`. Without `--shard`, the index comes from `JOB_COMPLETION_INDEX`, else
//! from `SLURM_ARRAY_TASK_ID` minus `SLURM_ARRAY_TASK_MIN` (so arrays `0-3` and `1-4` both give
//! 0 … 3; without `SLURM_ARRAY_TASK_MIN` the task id is taken as 0-based), and the total from
//! `--shards N` or `TOKENCLIP_SHARDS`. An explicit `--shard` wins over the environment.
//!
//! **Partition: contiguous.** Shard `i` of `n` takes items `⌊len·i/n⌋ .. ⌊len·(i+1)/n⌋` of the
//! run's ordered input list (sizes differ by at most one; a shard may be empty when `n > len`).
//! It depends only on the list and `n`, so a rerun takes the same items. Contiguous rather than
//! strided because a merge then is a concatenation in index order (results streamed shard after
//! shard, in exactly the order a single run produces them), and because `eval --shots` builds a
//! class's few-shot memory once per shard that touches the class: contiguous ranges touch about
//! `classes/n + 1` classes each, strided ones every class.
//!
//! **Merge checks** ([`check_set`]): every shard of one run, each once: same total, same
//! fingerprint (named parts: model, inputs or dataset, options), no index twice, none missing.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

mod error;

pub use error::ShardError;

/// The environment variable giving the total when `--shards` is not used.
pub const TOTAL_ENV: &str = "TOKENCLIP_SHARDS";
/// Kubernetes Indexed Jobs: the 0-based index of the pod.
pub const K8S_INDEX_ENV: &str = "JOB_COMPLETION_INDEX";
/// Slurm job arrays: the task id (its range starts at `SLURM_ARRAY_TASK_MIN`).
pub const SLURM_INDEX_ENV: &str = "SLURM_ARRAY_TASK_ID";
/// Slurm job arrays: the smallest task id of the array.
pub const SLURM_MIN_ENV: &str = "SLURM_ARRAY_TASK_MIN";

/// One shard: 0-based `index` of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct ShardSpec {
    /// 0-based, below `count`.
    pub index: usize,
    /// The number of shards, at least 1.
    pub count: usize,
}

impl fmt::Display for ShardSpec {
    /// `I-of-N`, as shard file names carry it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-of-{}", self.index, self.count)
    }
}

impl ShardSpec {
    /// A checked shard; `from` names where the numbers came from, for the error.
    ///
    /// # Errors
    /// [`ShardError::ZeroTotal`], [`ShardError::IndexOutOfRange`].
    pub fn new(index: usize, count: usize, from: &str) -> Result<Self, ShardError> {
        if count == 0 {
            return Err(ShardError::ZeroTotal { from: from.to_owned() });
        }
        if index >= count {
            return Err(ShardError::IndexOutOfRange { from: from.to_owned(), index, count });
        }
        Ok(ShardSpec { index, count })
    }

    /// Parses `--shard I/N` (0-based I).
    ///
    /// # Errors
    /// [`ShardError::Malformed`] unless it is two whole numbers around one `/`; then as [`Self::new`].
    pub fn parse(value: &str) -> Result<Self, ShardError> {
        let malformed = || ShardError::Malformed { value: value.to_owned() };
        let (i, n) = value.split_once('/').ok_or_else(malformed)?;
        let num = |s: &str| {
            let s = s.trim();
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(malformed());
            }
            s.parse::<usize>().map_err(|_| malformed())
        };
        Self::new(num(i)?, num(n)?, &format!("--shard {value}"))
    }

    /// The shard this process is: `--shard` if given, else the environment (see the module doc);
    /// `None` for an unsharded run. `env` reads a variable (`std::env::var(..).ok()` in the CLI).
    ///
    /// # Errors
    /// As [`Self::parse`] and [`Self::new`]; [`ShardError::BadNumber`] for a value that is not a
    /// number; [`ShardError::IndexWithoutTotal`] / [`ShardError::TotalWithoutIndex`] when only
    /// one of the two is known.
    pub fn resolve(
        flag: Option<&str>,
        total_flag: Option<usize>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Self>, ShardError> {
        if let Some(f) = flag {
            return Self::parse(f).map(Some);
        }
        let number = |var: &str, v: &str| {
            v.trim().parse::<usize>().map_err(|_| ShardError::BadNumber { var: var.to_owned(), value: v.to_owned() })
        };
        let total = match (total_flag, env(TOTAL_ENV).filter(|v| !v.trim().is_empty())) {
            (Some(n), _) => Some((n, format!("--shards {n}"))),
            (None, Some(v)) => Some((number(TOTAL_ENV, &v)?, format!("{TOTAL_ENV}={v}"))),
            (None, None) => None,
        };
        let index = if let Some(v) = env(K8S_INDEX_ENV).filter(|v| !v.trim().is_empty()) {
            Some((K8S_INDEX_ENV, number(K8S_INDEX_ENV, &v)?, v))
        } else if let Some(v) = env(SLURM_INDEX_ENV).filter(|v| !v.trim().is_empty()) {
            let id = number(SLURM_INDEX_ENV, &v)?;
            let min = match env(SLURM_MIN_ENV).filter(|m| !m.trim().is_empty()) {
                Some(m) => number(SLURM_MIN_ENV, &m)?,
                None => 0,
            };
            let index = id.checked_sub(min).ok_or_else(|| ShardError::BadNumber {
                var: SLURM_INDEX_ENV.to_owned(),
                value: format!("{v} (below {SLURM_MIN_ENV}={min})"),
            })?;
            Some((SLURM_INDEX_ENV, index, v))
        } else {
            None
        };
        match (index, total) {
            (None, None) => Ok(None),
            (Some((var, _, value)), None) => Err(ShardError::IndexWithoutTotal { var, value }),
            (None, Some((0, from))) => Err(ShardError::ZeroTotal { from }),
            (None, Some((count, from))) => Err(ShardError::TotalWithoutIndex { from, count }),
            (Some((var, index, value)), Some((count, from))) => {
                Self::new(index, count, &format!("{var}={value} with {from}")).map(Some)
            }
        }
    }

    /// The items of a list of `len` this shard takes (see the module doc).
    pub fn range(&self, len: usize) -> Range<usize> {
        let at = |i: usize| (len as u128 * i as u128 / self.count as u128) as usize;
        at(self.index)..at(self.index + 1)
    }
}

/// What identifies a run, in named parts (each a short text, e.g. a hash): shards merge only if
/// every part is equal.
pub type Fingerprint = BTreeMap<String, String>;

/// One shard as a merge sees it: where it is (for messages), its spec and fingerprint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardInfo {
    /// The shard file, for messages.
    pub name: String,
    /// Its index and total.
    pub spec: ShardSpec,
    /// Its run's fingerprint.
    pub fingerprint: Fingerprint,
}

/// Checks that `shards` are every shard of one run, each once, and returns them sorted by index.
///
/// # Errors
/// [`ShardError::NoShards`] if empty; [`ShardError::MixedTotal`]; [`ShardError::Mismatch`] naming
/// the first fingerprint part that differs; [`ShardError::Overlap`]; [`ShardError::Missing`]
/// listing every missing index.
pub fn check_set(mut shards: Vec<ShardInfo>, searched: &str) -> Result<Vec<ShardInfo>, ShardError> {
    let Some(first) = shards.first().cloned() else {
        return Err(ShardError::NoShards { where_: searched.to_owned() });
    };
    for s in &shards[1..] {
        if s.spec.count != first.spec.count {
            return Err(ShardError::MixedTotal {
                a: first.name.clone(),
                ia: first.spec.index,
                na: first.spec.count,
                b: s.name.clone(),
                ib: s.spec.index,
                nb: s.spec.count,
            });
        }
        let parts = first.fingerprint.keys().chain(s.fingerprint.keys());
        for part in parts {
            let (va, vb) = (first.fingerprint.get(part), s.fingerprint.get(part));
            if va != vb {
                let none = || "none".to_string();
                return Err(ShardError::Mismatch {
                    a: first.name.clone(),
                    b: s.name.clone(),
                    part: part.clone(),
                    values: Box::new((va.cloned().unwrap_or_else(none), vb.cloned().unwrap_or_else(none))),
                });
            }
        }
    }
    shards.sort_by_key(|s| s.spec.index);
    for w in shards.windows(2) {
        if w[0].spec.index == w[1].spec.index {
            let (a, b) = (w[0].name.clone(), w[1].name.clone());
            return Err(ShardError::Overlap { index: w[0].spec.index, count: first.spec.count, a, b });
        }
    }
    let missing: Vec<usize> = (0..first.spec.count).filter(|i| !shards.iter().any(|s| s.spec.index == *i)).collect();
    if !missing.is_empty() {
        return Err(ShardError::Missing { count: first.spec.count, missing });
    }
    Ok(shards)
}

#[cfg(test)]
mod tests;
