//! An `eval` shard's partial results (docs/SHARDING.md): one file per shard,
//! `OUT/shards/eval.I-of-N.tcshard`, holding the shard's manifest and, in evaluation order, one
//! record per test image of its range: the detection result (the cache's TCEVAL entry, map
//! included) or why there is none. `tokenclip merge` replays the records into the evaluator in
//! the single run's order, so the report is the one a single run writes.
//!
//! **Format** (little-endian): magic `TCSHARD1`; `u32` manifest length and the manifest (UTF-8
//! JSON, written by the CLI); then records, each a `u8` kind:
//! - `1` (result): `u32` length and a cache entry ([`super::cache::encode_entry`]) whose key is
//!   the image's path relative to the dataset folder;
//! - `2` (failure): `u32` length and the key, `u32` length and the reason (UTF-8);
//! - `0` (end): `u32` length and a trailer (UTF-8 JSON, what the shard learnt while running),
//!   `u64` number of records, `u64` FNV-1a 64 of every byte before this checksum.
//!
//! The file is streamed to a temporary name and renamed when complete
//! ([`crate::io::output::AtomicFile`]), so a killed shard leaves no file, and a file without a
//! valid end record is refused as damaged. Native only.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

use super::cache::{decode_entry, encode_entry, CachedResult};
use crate::io::cache::Fnv64;
use crate::io::output::AtomicFile;
use crate::shard::ShardError;

const MAGIC: &[u8; 8] = b"TCSHARD1";
const END: u8 = 0;
const RESULT: u8 = 1;
const FAILURE: u8 = 2;
/// A manifest or key longer than this is damage, not data.
const MAX_TEXT: u32 = 64 << 20;

fn err(path: &Path, what: impl Into<String>) -> ShardError {
    ShardError::File { path: path.display().to_string(), what: what.into() }
}

/// One image's record.
#[derive(Clone, Debug, PartialEq)]
pub enum PartialRecord {
    /// Its detection result.
    Result {
        /// The image, relative to the dataset folder.
        key: String,
        /// The result.
        result: CachedResult,
    },
    /// It could not be detected.
    Failure {
        /// The image, relative to the dataset folder.
        key: String,
        /// Why.
        reason: String,
    },
}

/// Writes a partial-results file; nothing appears at its path until [`PartialWriter::commit`].
#[derive(Debug)]
pub struct PartialWriter {
    path: PathBuf,
    file: AtomicFile,
    hash: Fnv64,
    records: u64,
}

impl PartialWriter {
    /// Starts `path` (its folder must exist) with `manifest`.
    ///
    /// # Errors
    /// [`ShardError::File`] if the temporary file cannot be created or written.
    pub fn create(path: &Path, manifest: &str) -> Result<Self, ShardError> {
        let file = AtomicFile::create(path).map_err(|e| err(path, e.to_string()))?;
        let mut w = PartialWriter { path: path.to_path_buf(), file, hash: Fnv64::default(), records: 0 };
        w.put(MAGIC)?;
        w.text(manifest)?;
        Ok(w)
    }

    fn put(&mut self, bytes: &[u8]) -> Result<(), ShardError> {
        self.hash = self.hash.bytes(bytes);
        self.file.write_all(bytes).map_err(|e| err(&self.path, e.to_string()))
    }

    fn text(&mut self, s: &str) -> Result<(), ShardError> {
        let len =
            u32::try_from(s.len()).ok().filter(|&n| n <= MAX_TEXT).ok_or_else(|| err(&self.path, "text too long"))?;
        self.put(&len.to_le_bytes())?;
        self.put(s.as_bytes())
    }

    /// Appends an image's result.
    ///
    /// # Errors
    /// [`ShardError::File`] if it cannot be written.
    pub fn result(&mut self, key: &str, result: &CachedResult) -> Result<(), ShardError> {
        let entry = encode_entry(key, result);
        let len = u32::try_from(entry.len()).map_err(|_| err(&self.path, "result too large"))?;
        self.put(&[RESULT])?;
        self.put(&len.to_le_bytes())?;
        self.put(&entry)?;
        self.records += 1;
        Ok(())
    }

    /// Appends an image that could not be detected.
    ///
    /// # Errors
    /// [`ShardError::File`] if it cannot be written.
    pub fn failure(&mut self, key: &str, reason: &str) -> Result<(), ShardError> {
        self.put(&[FAILURE])?;
        self.text(key)?;
        self.text(reason)?;
        self.records += 1;
        Ok(())
    }

    /// Writes the end record with `trailer` and puts the file in place (replacing an older one).
    ///
    /// # Errors
    /// [`ShardError::File`] if it cannot be written or renamed.
    pub fn commit(mut self, trailer: &str) -> Result<(), ShardError> {
        self.put(&[END])?;
        self.text(trailer)?;
        self.put(&self.records.to_le_bytes())?;
        let sum = self.hash.finish();
        self.file.write_all(&sum.to_le_bytes()).map_err(|e| err(&self.path, e.to_string()))?;
        let path = self.path.clone();
        self.file.commit().map_err(|e| err(&path, e.to_string()))
    }
}

/// Reads a partial-results file: the manifest at once, then the records one by one.
#[derive(Debug)]
pub struct PartialReader {
    path: PathBuf,
    input: BufReader<File>,
    hash: Fnv64,
    records: u64,
    done: bool,
    /// The manifest (JSON text).
    pub manifest: String,
    /// The trailer (JSON text), once [`PartialReader::next_record`] has returned `None`.
    pub trailer: Option<String>,
}

impl PartialReader {
    /// Opens `path` and reads its manifest.
    ///
    /// # Errors
    /// [`ShardError::File`] if it cannot be read or is not a partial-results file.
    pub fn open(path: &Path) -> Result<Self, ShardError> {
        let file = File::open(path).map_err(|e| err(path, e.to_string()))?;
        let mut r = PartialReader {
            path: path.to_path_buf(),
            input: BufReader::with_capacity(1 << 20, file),
            hash: Fnv64::default(),
            records: 0,
            done: false,
            manifest: String::new(),
            trailer: None,
        };
        if r.take(8)? != MAGIC {
            return Err(err(path, "not an eval shard file (wrong magic)"));
        }
        r.manifest = r.text()?;
        Ok(r)
    }

    fn take(&mut self, n: usize) -> Result<Vec<u8>, ShardError> {
        let mut buf = vec![0u8; n];
        self.input.read_exact(&mut buf).map_err(|_| err(&self.path, "truncated (a shard that did not finish?)"))?;
        self.hash = self.hash.bytes(&buf);
        Ok(buf)
    }

    fn u32(&mut self) -> Result<u32, ShardError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn text(&mut self) -> Result<String, ShardError> {
        let len = self.u32()?;
        if len > MAX_TEXT {
            return Err(err(&self.path, "damaged (a text field is too long)"));
        }
        String::from_utf8(self.take(len as usize)?).map_err(|_| err(&self.path, "damaged (text is not UTF-8)"))
    }

    /// The next record, or `None` after the last one (once the end record's count and checksum
    /// are checked).
    ///
    /// # Errors
    /// [`ShardError::File`] if the file is truncated or damaged.
    pub fn next_record(&mut self) -> Result<Option<PartialRecord>, ShardError> {
        if self.done {
            return Ok(None);
        }
        let kind = self.take(1)?[0];
        let record = match kind {
            RESULT => {
                let len = self.u32()? as usize;
                let bytes = self.take(len)?;
                let (key, result) =
                    decode_entry(&bytes).map_err(|e| err(&self.path, format!("damaged result: {e}")))?;
                PartialRecord::Result { key, result }
            }
            FAILURE => PartialRecord::Failure { key: self.text()?, reason: self.text()? },
            END => return self.end().map(|()| None),
            k => return Err(err(&self.path, format!("damaged (record kind {k})"))),
        };
        self.records += 1;
        Ok(Some(record))
    }

    fn end(&mut self) -> Result<(), ShardError> {
        let trailer = self.text()?;
        let b = self.take(8)?;
        let count = u64::from_le_bytes(b.as_slice().try_into().map_err(|_| err(&self.path, "truncated"))?);
        let want = self.hash.finish();
        let mut sum = [0u8; 8];
        self.input.read_exact(&mut sum).map_err(|_| err(&self.path, "truncated (no checksum)"))?;
        if u64::from_le_bytes(sum) != want {
            return Err(err(&self.path, "damaged (checksum mismatch)"));
        }
        if count != self.records {
            return Err(err(&self.path, format!("damaged ({count} records announced, {} read)", self.records)));
        }
        let mut rest = [0u8; 1];
        if self.input.read(&mut rest).map_err(|e| err(&self.path, e.to_string()))? != 0 {
            return Err(err(&self.path, "damaged (bytes after the end record)"));
        }
        self.done = true;
        self.trailer = Some(trailer);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(score: f32) -> CachedResult {
        CachedResult { score, map_max: 0.5, size: 2, map: vec![0.1, 0.2, 0.3, 0.4], image_width: 9, image_height: 7 }
    }

    fn write(dir: &Path) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let p = dir.join("eval.0-of-1.tcshard");
        let mut w = PartialWriter::create(&p, "{\"a\": 1}").unwrap();
        w.result("c/test/good/0.png", &sample(0.25)).unwrap();
        w.failure("c/test/bad/1.png", "cannot decode").unwrap();
        w.result("c/test/bad/2.png", &sample(f32::NAN)).unwrap();
        assert!(!p.exists(), "nothing in place before commit");
        w.commit("{\"t\": 2}").unwrap();
        p
    }

    #[test]
    fn records_round_trip_in_order() {
        let dir = std::env::temp_dir().join(format!("tokenclip-partial-{}", std::process::id()));
        let p = write(&dir);
        let mut r = PartialReader::open(&p).unwrap();
        assert_eq!(r.manifest, "{\"a\": 1}");
        let mut got = Vec::new();
        while let Some(rec) = r.next_record().unwrap() {
            got.push(rec);
        }
        assert_eq!(got.len(), 3);
        assert_eq!(r.trailer.as_deref(), Some("{\"t\": 2}"));
        assert_eq!(got[0], PartialRecord::Result { key: "c/test/good/0.png".into(), result: sample(0.25) });
        assert_eq!(got[1], PartialRecord::Failure { key: "c/test/bad/1.png".into(), reason: "cannot decode".into() });
        assert!(matches!(&got[2], PartialRecord::Result { result, .. } if result.score.is_nan()));
        let bytes = std::fs::read(&p).unwrap();
        let read_all = |b: &[u8]| -> Result<usize, ShardError> {
            std::fs::write(&p, b).unwrap();
            let mut r = PartialReader::open(&p)?;
            let mut n = 0;
            while r.next_record()?.is_some() {
                n += 1;
            }
            Ok(n)
        };
        for cut in [0, 8, 20, bytes.len() - 9, bytes.len() - 1] {
            assert!(read_all(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        for flip in [3, 14, 40, bytes.len() - 12, bytes.len() - 1] {
            let mut b = bytes.clone();
            b[flip] ^= 0x20;
            assert!(read_all(&b).is_err(), "flip at {flip}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(read_all(&longer).is_err());
        assert_eq!(read_all(&bytes).unwrap(), 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
