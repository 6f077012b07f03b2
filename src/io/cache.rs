//! A keyed on-disk cache of byte blobs (native only): per-image results of `eval` and the
//! visual features of `train` live here, so interrupted runs do not redo finished images.
//!
//! Each entry is one file `KEY.bin` = magic, payload length, FNV-1a 64 checksum, payload; an
//! entry whose length or checksum does not match (a crash mid-write of an older version, a
//! truncated copy, bit rot) is deleted and reported as missing, never trusted. Writes go through
//! [`super::output::write_atomic`].

use std::path::{Path, PathBuf};

use super::InputError;

const MAGIC: &[u8; 4] = b"TKC1";
const HEADER: usize = 4 + 8 + 8;

/// FNV-1a, 64-bit: a stable, dependency-free hash for cache keys and checksums.
#[derive(Debug, Clone, Copy)]
pub struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Fnv64(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv64 {
    /// Mixes in `bytes`.
    pub fn bytes(mut self, bytes: &[u8]) -> Self {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }

    /// Mixes in a string, length-prefixed so that concatenations cannot collide.
    pub fn str(self, s: &str) -> Self {
        self.u64(s.len() as u64).bytes(s.as_bytes())
    }

    /// Mixes in a number.
    pub fn u64(self, v: u64) -> Self {
        self.bytes(&v.to_le_bytes())
    }

    /// Mixes in a file's identity: its canonical path, size and modification time (so an edited
    /// file gets a new key without reading it).
    pub fn file(self, path: &Path) -> Result<Self, InputError> {
        let name = path.display().to_string();
        let io = |e| InputError::Io { path: name.clone(), source: e };
        let meta = std::fs::metadata(path).map_err(io)?;
        let canonical = std::fs::canonicalize(path).map_err(io)?;
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as u64);
        Ok(self.str(&canonical.to_string_lossy()).u64(meta.len()).u64(mtime))
    }

    /// The hash.
    pub fn finish(self) -> u64 {
        self.0
    }
}

/// A folder of cache entries.
#[derive(Debug, Clone)]
pub struct BlobCache {
    dir: PathBuf,
}

impl BlobCache {
    /// Opens (creating if needed) the cache folder.
    pub fn open(dir: &Path) -> Result<Self, InputError> {
        super::output::ensure_dir(dir)?;
        Ok(BlobCache { dir: dir.to_path_buf() })
    }

    fn path(&self, key: u64) -> PathBuf {
        self.dir.join(format!("{key:016x}.bin"))
    }

    /// The payload stored under `key`, or `None` if absent or damaged (a damaged entry is removed).
    pub fn get(&self, key: u64) -> Option<Vec<u8>> {
        let path = self.path(key);
        let bytes = std::fs::read(&path).ok()?;
        match decode(&bytes) {
            Some(payload) => Some(payload.to_vec()),
            None => {
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Stores `payload` under `key` (atomically replacing any previous entry).
    pub fn put(&self, key: u64, payload: &[u8]) -> Result<(), InputError> {
        let mut bytes = Vec::with_capacity(HEADER + payload.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&Fnv64::default().bytes(payload).finish().to_le_bytes());
        bytes.extend_from_slice(payload);
        super::output::write_atomic(&self.path(key), &bytes)
    }
}

fn decode(bytes: &[u8]) -> Option<&[u8]> {
    let header = bytes.get(..HEADER)?;
    let len = u64::from_le_bytes(header[4..12].try_into().ok()?);
    let sum = u64::from_le_bytes(header[12..20].try_into().ok()?);
    let payload = &bytes[HEADER..];
    let ok = &header[..4] == MAGIC && payload.len() as u64 == len && Fnv64::default().bytes(payload).finish() == sum;
    ok.then_some(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damaged_entries_are_dropped() {
        let dir = std::env::temp_dir().join(format!("tokenclip-cache-test-{}", std::process::id()));
        let cache = BlobCache::open(&dir).unwrap();
        cache.put(42, b"hello features").unwrap();
        assert_eq!(cache.get(42).as_deref(), Some(&b"hello features"[..]));
        assert_eq!(cache.get(43), None);
        let path = cache.path(42);
        let mut bytes = std::fs::read(&path).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(cache.get(42), None, "a flipped bit must not be trusted");
        assert!(!path.exists(), "the damaged entry is removed");
        cache.put(42, b"x").unwrap();
        std::fs::write(&path, &std::fs::read(&path).unwrap()[..HEADER]).unwrap();
        assert_eq!(cache.get(42), None, "a truncated entry must not be trusted");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn keys_depend_on_every_part() {
        let a = Fnv64::default().str("ab").str("c").finish();
        let b = Fnv64::default().str("a").str("bc").finish();
        assert_ne!(a, b);
        assert_eq!(Fnv64::default().bytes(b"").finish(), 0xcbf2_9ce4_8422_2325);
        assert_eq!(Fnv64::default().bytes(b"a").finish(), 0xaf63_dc4c_8601_ec8c);
    }
}
