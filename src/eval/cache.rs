//! Per-image detection results cached on disk, so an interrupted evaluation picks up where it
//! stopped and a rerun (another `--aupro`, `--plots`, `--classes`) detects nothing again.
//!
//! **Where.** `<cache>/<model id>/<image id>.tcr`: the model id is a hash of the model file's
//! size, modification time and safetensors header (which holds the whole configuration); the
//! image id a hash of the image's canonical path, size and modification time. Editing, replacing
//! or re-importing either file changes its id, so stale results are never found. Results are f32
//! as computed, so a rerun reports bit-identical numbers; they do not depend on the backend beyond
//! its rounding (CPU and GPU agree to ~1e-6), so a cache filled on one is used on the other.
//!
//! **Entry format** (little-endian): magic `TCEVAL01`, `u32` format version, `u32` key length
//! and the key (the image's path, size and time as text, checked on reading so a hash collision
//! cannot hand back another image's result), `u32` image width and height, `u32` map side S,
//! `f32` score, `f32` map maximum, S·S `f32` map values, and a `u64` FNV-1a 64 checksum of
//! everything before it. A file of the wrong length, magic, version, key or checksum is reported
//! as damaged and recomputed, never trusted. Entries are written atomically (temporary file,
//! then rename), so an interrupted run leaves either the whole entry or none. S = 518 gives about
//! 1 MiB per image.
//!
//! The hash is FNV-1a 64 (`io::cache::Fnv64`, no dependency): it only has to spread names, since
//! the key inside each entry is compared anyway. Native only.

use std::path::{Path, PathBuf};

use super::dataset::DatasetError;
use crate::io::cache::Fnv64 as Fnv;

/// The entry format version; bump it when the format or the detection it caches changes.
pub const CACHE_VERSION: u32 = 1;

const MAGIC: &[u8; 8] = b"TCEVAL01";

/// FNV-1a 64 of `bytes`.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    Fnv::default().bytes(bytes).finish()
}

/// One image's detection result.
#[derive(Clone, Debug, PartialEq)]
pub struct CachedResult {
    /// The image score.
    pub score: f32,
    /// The largest map value.
    pub map_max: f32,
    /// The map side S.
    pub size: usize,
    /// The S × S map, row-major.
    pub map: Vec<f32>,
    /// The image's width as decoded (to check its mask against).
    pub image_width: u32,
    /// The image's height as decoded.
    pub image_height: u32,
}

/// The bytes of a cache entry for `key` (see the module doc for the format).
///
/// # Shapes
/// `r.map`: `[r.size, r.size]`.
pub fn encode_entry(key: &str, r: &CachedResult) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + key.len() + r.map.len() * 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&CACHE_VERSION.to_le_bytes());
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    for v in [r.image_width, r.image_height, r.size as u32] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&r.score.to_le_bytes());
    out.extend_from_slice(&r.map_max.to_le_bytes());
    for v in &r.map {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let sum = fnv1a64(&out);
    out.extend_from_slice(&sum.to_le_bytes());
    out
}

/// Reads little-endian fields from a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("truncated".into());
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn f32(&mut self) -> Result<f32, String> {
        self.u32().map(f32::from_bits)
    }
}

/// The key and result of a cache entry; the reason as text if it is damaged (wrong magic,
/// version, length or checksum).
pub fn decode_entry(bytes: &[u8]) -> Result<(String, CachedResult), String> {
    let body_len = bytes.len().checked_sub(8).ok_or("truncated")?;
    let (body, sum) = bytes.split_at(body_len);
    let mut r = Reader(body);
    if r.take(8)? != MAGIC {
        return Err("not a tokenclip cache entry".into());
    }
    let version = r.u32()?;
    if version != CACHE_VERSION {
        return Err(format!("format version {version}, expected {CACHE_VERSION}"));
    }
    let key_len = r.u32()? as usize;
    let key = String::from_utf8(r.take(key_len)?.to_vec()).map_err(|_| "key is not UTF-8")?;
    let (image_width, image_height, size) = (r.u32()?, r.u32()?, r.u32()? as usize);
    let (score, map_max) = (r.f32()?, r.f32()?);
    let n = size.checked_mul(size).and_then(|n| n.checked_mul(4)).ok_or("map size overflows")?;
    if r.0.len() != n {
        return Err(format!("{} map bytes for a {size}x{size} map, expected {n}", r.0.len()));
    }
    let stored = u64::from_le_bytes(sum.try_into().map_err(|_| "truncated")?);
    if fnv1a64(body) != stored {
        return Err("checksum mismatch".into());
    }
    let map = r.0.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    Ok((key, CachedResult { score, map_max, size, map, image_width, image_height }))
}

/// What [`ResultCache::load`] found.
#[derive(Debug)]
pub enum Lookup {
    /// A valid entry for this image.
    Hit(CachedResult),
    /// No entry.
    Miss,
    /// An entry that cannot be trusted (the error says why); recompute and store again.
    Damaged(DatasetError),
}

/// The cache of one model's results in one folder.
#[derive(Clone, Debug)]
pub struct ResultCache {
    dir: PathBuf,
}

impl ResultCache {
    /// The cache of `model`'s results under `root` (created if missing): the folder
    /// `root/<model id>`.
    ///
    /// # Errors
    /// [`DatasetError::Io`] if the model file cannot be read; [`DatasetError::Cache`] if the
    /// folder cannot be created or written.
    pub fn open(root: &Path, model: &Path) -> Result<Self, DatasetError> {
        let dir = root.join(format!("{:016x}", model_identity(model)?));
        crate::io::output::ensure_dir(&dir)
            .map_err(|e| DatasetError::Cache { path: dir.display().to_string(), what: e.to_string() })?;
        Ok(ResultCache { dir })
    }

    /// The folder holding this model's entries.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The key of `image`: its canonical path, size and modification time.
    ///
    /// # Errors
    /// [`DatasetError::Io`] if the file cannot be found or its metadata read.
    pub fn image_key(image: &Path) -> Result<String, DatasetError> {
        let io = |source| DatasetError::Io { path: image.display().to_string(), source };
        let path = image.canonicalize().map_err(io)?;
        let meta = std::fs::metadata(&path).map_err(io)?;
        Ok(format!("{}\n{}\n{}", path.display(), meta.len(), mtime_ns(&meta)))
    }

    /// Where the entry of `key` lives.
    pub fn entry_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{:016x}.tcr", fnv1a64(key.as_bytes())))
    }

    /// The stored result for `key`, if there is a valid one.
    pub fn load(&self, key: &str) -> Lookup {
        let path = self.entry_path(key);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Lookup::Miss,
            Err(source) => return Lookup::Damaged(DatasetError::Io { path: path.display().to_string(), source }),
        };
        let damaged = |what: String| Lookup::Damaged(DatasetError::Cache { path: path.display().to_string(), what });
        match decode_entry(&bytes) {
            Ok((k, _)) if k != key => damaged("it belongs to another image".into()),
            Ok((_, r)) => Lookup::Hit(r),
            Err(what) => damaged(what),
        }
    }

    /// Stores `result` for `key`, atomically.
    ///
    /// # Errors
    /// [`DatasetError::Cache`] if the entry cannot be written.
    pub fn store(&self, key: &str, result: &CachedResult) -> Result<(), DatasetError> {
        let path = self.entry_path(key);
        crate::io::output::write_atomic(&path, &encode_entry(key, result))
            .map_err(|e| DatasetError::Cache { path: path.display().to_string(), what: e.to_string() })
    }
}

/// Modification time in nanoseconds since the epoch (0 where the platform has none).
fn mtime_ns(meta: &std::fs::Metadata) -> u128 {
    meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos())
}

/// The model's identity: FNV-1a 64 of the cache version, the file's size and modification time,
/// and its safetensors header (8-byte length and the JSON header, configuration included).
///
/// # Errors
/// [`DatasetError::Io`] if the file cannot be read or its header is cut short.
pub fn model_identity(model: &Path) -> Result<u64, DatasetError> {
    use std::io::Read;
    /// safetensors headers are at most 100 MB.
    const MAX_HEADER: u64 = 100_000_000;
    let io = |source| DatasetError::Io { path: model.display().to_string(), source };
    let mut f = std::fs::File::open(model).map_err(io)?;
    let meta = f.metadata().map_err(io)?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(io)?;
    let header_len = u64::from_le_bytes(len).min(MAX_HEADER).min(meta.len().saturating_sub(8));
    let mut header = Vec::new();
    f.take(header_len).read_to_end(&mut header).map_err(io)?;
    let h = Fnv::default()
        .bytes(b"tokenclip eval cache\n")
        .bytes(&CACHE_VERSION.to_le_bytes())
        .bytes(&meta.len().to_le_bytes())
        .bytes(&mtime_ns(&meta).to_le_bytes())
        .bytes(&len)
        .bytes(&header);
    Ok(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> CachedResult {
        CachedResult {
            score: 0.25,
            map_max: 0.75,
            size: 3,
            map: (0..9).map(|i| i as f32 / 8.0).collect(),
            image_width: 7,
            image_height: 5,
        }
    }

    #[test]
    fn fnv_matches_published_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn entries_round_trip() {
        let bytes = encode_entry("a.png\n10\n5", &sample());
        assert_eq!(decode_entry(&bytes).unwrap(), ("a.png\n10\n5".to_string(), sample()));
    }

    #[test]
    fn damage_is_detected_never_trusted() {
        let bytes = encode_entry("k", &sample());
        for cut in [0, 7, 20, bytes.len() - 9, bytes.len() - 1] {
            assert!(decode_entry(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for flip in [0, 9, 14, 30, bytes.len() - 12, bytes.len() - 1] {
            let mut b = bytes.clone();
            b[flip] ^= 0x10;
            assert!(decode_entry(&b).is_err(), "flip at {flip}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_entry(&longer).is_err());
    }
}
