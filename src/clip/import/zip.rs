//! A minimal ZIP reader for PyTorch checkpoints, over any `Read + Seek` (normally a `File`).
//!
//! Read: the end-of-central-directory record (found past an archive comment), ZIP64 (the EOCD64
//! locator and record, and zip64 extra fields in central-directory entries), central-directory
//! entries, and local headers (only to find where an entry's data starts; torch pads them).
//! Entries may be STORED (what torch writes for tensor data) or DEFLATE (TorchScript `code/`).
//! Stored entries can be read by byte range, so a multi-GB checkpoint is never read whole.
//!
//! Refused: encrypted entries, multi-disk archives, other compression methods, and byte-range
//! reads of compressed entries. CRC-32 is checked whenever a whole entry is read.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};

use crate::clip::ModelError;

const EOCD_SIG: u32 = 0x0605_4b50;
const EOCD64_LOCATOR_SIG: u32 = 0x0706_4b50;
const EOCD64_SIG: u32 = 0x0606_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const LOCAL_SIG: u32 = 0x0403_4b50;
/// The central directory is read into memory; no real checkpoint comes near this.
const MAX_CENTRAL_DIR: u64 = 256 << 20;

/// True when `bytes` starts like a ZIP archive (a local header, or the record of an empty one).
pub fn has_zip_magic(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06")
}

/// One file in the archive, from its central-directory record.
#[derive(Debug, Clone)]
pub struct ZipEntry {
    /// The name inside the archive (`archive/data/0`).
    pub name: String,
    /// Compression method: 0 stored, 8 deflate.
    pub method: u16,
    /// Bytes the entry takes in the archive.
    pub compressed_size: u64,
    /// Bytes once decompressed.
    pub size: u64,
    /// CRC-32 of the decompressed bytes.
    pub crc32: u32,
    header_offset: u64,
    data_offset: Option<u64>,
}

/// An open ZIP archive: its directory in memory, its data left in the reader.
#[derive(Debug)]
pub struct ZipArchive<R> {
    reader: R,
    label: String,
    len: u64,
    entries: Vec<ZipEntry>,
    index: HashMap<String, usize>,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at.checked_add(2)?)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at.checked_add(8)?)?.try_into().ok()?))
}

impl<R: Read + Seek> ZipArchive<R> {
    /// Reads the directory. `label` (the file's path) prefixes every error message.
    pub fn new(mut reader: R, label: impl Into<String>) -> Result<Self, ModelError> {
        let label = label.into();
        let len = reader.seek(SeekFrom::End(0)).map_err(|e| ModelError::io(&label, e))?;
        let mut zip = ZipArchive { reader, label, len, entries: Vec::new(), index: HashMap::new() };
        let (count, cd_offset, cd_size) = zip.find_directory()?;
        zip.read_directory(count, cd_offset, cd_size)?;
        Ok(zip)
    }

    fn corrupt(&self, what: impl Into<String>) -> ModelError {
        ModelError::corrupt(&self.label, what.into())
    }

    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<(), ModelError> {
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|end| end > self.len) {
            return Err(self.corrupt(format!("zip: {} bytes at offset {offset} run past the end", buf.len())));
        }
        let res = self.reader.seek(SeekFrom::Start(offset)).and_then(|_| self.reader.read_exact(buf));
        res.map_err(|e| ModelError::io(&self.label, e))
    }

    /// Finds the end-of-central-directory record (and its ZIP64 form): (entries, offset, size).
    fn find_directory(&mut self) -> Result<(u64, u64, u64), ModelError> {
        let tail_len = self.len.min(22 + 0xFFFF);
        let tail_start = self.len - tail_len;
        let mut tail = vec![0u8; tail_len as usize];
        self.read_at(tail_start, &mut tail)?;
        let pos = (0..tail.len().saturating_sub(21))
            .rev()
            .find(|&i| {
                u32_at(&tail, i) == Some(EOCD_SIG)
                    && u16_at(&tail, i + 20).is_some_and(|c| i + 22 + c as usize <= tail.len())
            })
            .ok_or_else(|| self.corrupt("not a ZIP archive, or truncated (no end-of-central-directory record)"))?;
        let field = |at| u32_at(&tail, pos + at).unwrap_or(0);
        let (disk, cd_disk) = (u16_at(&tail, pos + 4).unwrap_or(0), u16_at(&tail, pos + 6).unwrap_or(0));
        let mut count = u64::from(u16_at(&tail, pos + 10).unwrap_or(0));
        let (mut cd_size, mut cd_offset) = (u64::from(field(12)), u64::from(field(16)));
        let eocd_at = tail_start + pos as u64;
        // A ZIP64 locator sits just before the record.
        let mut locator = [0u8; 20];
        if eocd_at >= 20
            && self.read_at(eocd_at - 20, &mut locator).is_ok()
            && u32_at(&locator, 0) == Some(EOCD64_LOCATOR_SIG)
        {
            let at = u64_at(&locator, 8).unwrap_or(u64::MAX);
            let mut rec = [0u8; 56];
            self.read_at(at, &mut rec)?;
            if u32_at(&rec, 0) != Some(EOCD64_SIG) {
                return Err(self.corrupt(format!("zip: no ZIP64 end-of-central-directory record at offset {at}")));
            }
            if u32_at(&rec, 16) != Some(0) || u32_at(&rec, 20) != Some(0) {
                return Err(self.corrupt("zip: multi-disk archives are not supported"));
            }
            count = u64_at(&rec, 32).unwrap_or(0);
            cd_size = u64_at(&rec, 40).unwrap_or(0);
            cd_offset = u64_at(&rec, 48).unwrap_or(0);
        } else if disk != 0 || cd_disk != 0 {
            return Err(self.corrupt("zip: multi-disk archives are not supported"));
        }
        Ok((count, cd_offset, cd_size))
    }

    fn read_directory(&mut self, count: u64, cd_offset: u64, cd_size: u64) -> Result<(), ModelError> {
        if cd_size > MAX_CENTRAL_DIR || cd_offset.checked_add(cd_size).is_none_or(|end| end > self.len) {
            return Err(self.corrupt(format!(
                "zip: central directory ({cd_size} bytes at offset {cd_offset}) does not fit in the {} byte file",
                self.len
            )));
        }
        if count > cd_size / 46 {
            return Err(self.corrupt(format!("zip: {count} entries cannot fit in a {cd_size} byte central directory")));
        }
        let mut cd = vec![0u8; cd_size as usize];
        self.read_at(cd_offset, &mut cd)?;
        let mut at = 0usize;
        for i in 0..count {
            let bad = || self.corrupt(format!("zip: central directory entry {i} is damaged"));
            if u32_at(&cd, at) != Some(CENTRAL_SIG) {
                return Err(bad());
            }
            let flags = u16_at(&cd, at + 8).ok_or_else(bad)?;
            let method = u16_at(&cd, at + 10).ok_or_else(bad)?;
            let crc32 = u32_at(&cd, at + 16).ok_or_else(bad)?;
            let mut compressed_size = u64::from(u32_at(&cd, at + 20).ok_or_else(bad)?);
            let mut size = u64::from(u32_at(&cd, at + 24).ok_or_else(bad)?);
            let name_len = usize::from(u16_at(&cd, at + 28).ok_or_else(bad)?);
            let extra_len = usize::from(u16_at(&cd, at + 30).ok_or_else(bad)?);
            let comment_len = usize::from(u16_at(&cd, at + 32).ok_or_else(bad)?);
            let mut header_offset = u64::from(u32_at(&cd, at + 42).ok_or_else(bad)?);
            let name_at = at + 46;
            let extra_at = name_at + name_len;
            let next = extra_at + extra_len + comment_len;
            let name = String::from_utf8_lossy(cd.get(name_at..extra_at).ok_or_else(bad)?).into_owned();
            let mut extra = cd.get(extra_at..extra_at + extra_len).ok_or_else(bad)?;
            while extra.len() >= 4 {
                let (id, n) = (u16_at(extra, 0).unwrap_or(0), usize::from(u16_at(extra, 2).unwrap_or(0)));
                let body = extra.get(4..4 + n).ok_or_else(bad)?;
                if id == 1 {
                    let mut fields = body.chunks_exact(8).map(|c| u64_at(c, 0).unwrap_or(0));
                    for slot in [&mut size, &mut compressed_size, &mut header_offset] {
                        if *slot == 0xFFFF_FFFF {
                            *slot = fields.next().ok_or_else(bad)?;
                        }
                    }
                }
                extra = &extra[4 + n..];
            }
            if flags & 1 != 0 {
                return Err(self.corrupt(format!("zip: entry {name} is encrypted")));
            }
            if self.index.insert(name.clone(), self.entries.len()).is_some() {
                return Err(self.corrupt(format!("zip: duplicate entry {name}")));
            }
            self.entries.push(ZipEntry {
                name,
                method,
                compressed_size,
                size,
                crc32,
                header_offset,
                data_offset: None,
            });
            at = next;
        }
        Ok(())
    }

    /// The entries, in central-directory order.
    pub fn entries(&self) -> &[ZipEntry] {
        &self.entries
    }

    /// The index of the entry called `name`.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// Where entry `i`'s data starts (read from its local header once, then remembered).
    fn data_offset(&mut self, i: usize) -> Result<u64, ModelError> {
        let entry = self.entries.get(i).ok_or_else(|| self.corrupt(format!("zip: no entry {i}")))?;
        if let Some(off) = entry.data_offset {
            return Ok(off);
        }
        let (name, header_at, csize) = (entry.name.clone(), entry.header_offset, entry.compressed_size);
        let mut head = [0u8; 30];
        self.read_at(header_at, &mut head)?;
        if u32_at(&head, 0) != Some(LOCAL_SIG) {
            return Err(self.corrupt(format!("zip: entry {name}: no local header at offset {header_at}")));
        }
        let skip = 30 + u64::from(u16_at(&head, 26).unwrap_or(0)) + u64::from(u16_at(&head, 28).unwrap_or(0));
        let off = header_at + skip;
        if off.checked_add(csize).is_none_or(|end| end > self.len) {
            return Err(self.corrupt(format!("zip: entry {name} ({csize} bytes at offset {off}) runs past the end")));
        }
        self.entries[i].data_offset = Some(off);
        Ok(off)
    }

    /// Reads all of entry `i` (stored or deflate), refusing entries larger than `max_size`;
    /// the CRC-32 is checked.
    pub fn read_entry(&mut self, i: usize, max_size: u64) -> Result<Vec<u8>, ModelError> {
        let off = self.data_offset(i)?;
        let e = self.entries[i].clone();
        if e.size > max_size {
            return Err(self.corrupt(format!("zip: entry {} claims {} bytes (at most {max_size})", e.name, e.size)));
        }
        let data = match e.method {
            0 => {
                if e.compressed_size != e.size {
                    return Err(self.corrupt(format!("zip: stored entry {} has two sizes", e.name)));
                }
                let n =
                    usize::try_from(e.size).map_err(|_| self.corrupt(format!("zip: entry {} too large", e.name)))?;
                let mut buf = vec![0u8; n];
                self.read_at(off, &mut buf)?;
                buf
            }
            8 => {
                self.reader.seek(SeekFrom::Start(off)).map_err(|err| ModelError::io(&self.label, err))?;
                let limited = (&mut self.reader).take(e.compressed_size);
                let mut out = Vec::with_capacity(e.size.min(64 << 20) as usize);
                flate2::read::DeflateDecoder::new(limited)
                    .take(e.size.saturating_add(1))
                    .read_to_end(&mut out)
                    .map_err(|err| self.corrupt(format!("zip: entry {}: deflate: {err}", e.name)))?;
                if out.len() as u64 != e.size {
                    return Err(self.corrupt(format!(
                        "zip: entry {} inflates to {} bytes, the directory says {}",
                        e.name,
                        out.len(),
                        e.size
                    )));
                }
                out
            }
            m => return Err(self.corrupt(format!("zip: entry {} uses unsupported compression method {m}", e.name))),
        };
        self.check_crc(&e, &data)?;
        Ok(data)
    }

    fn check_crc(&self, e: &ZipEntry, data: &[u8]) -> Result<(), ModelError> {
        let mut crc = flate2::Crc::new();
        crc.update(data);
        if crc.sum() != e.crc32 {
            return Err(self.corrupt(format!("zip: entry {}: CRC-32 mismatch (damaged data)", e.name)));
        }
        Ok(())
    }

    /// Fills `buf` from a stored entry `i`, starting `offset` bytes into its data. Reading the
    /// whole entry this way also checks its CRC-32.
    pub fn read_range(&mut self, i: usize, offset: u64, buf: &mut [u8]) -> Result<(), ModelError> {
        let start = self.data_offset(i)?;
        let e = &self.entries[i];
        if e.method != 0 {
            return Err(self.corrupt(format!("zip: entry {} is compressed; only stored entries can be sliced", e.name)));
        }
        if offset.checked_add(buf.len() as u64).is_none_or(|end| end > e.size) {
            let (name, size) = (e.name.clone(), e.size);
            return Err(
                self.corrupt(format!("zip: {} bytes at {offset} run past entry {name} ({size} bytes)", buf.len()))
            );
        }
        let whole = offset == 0 && buf.len() as u64 == e.size;
        self.read_at(start + offset, buf)?;
        if whole {
            let e = self.entries[i].clone();
            self.check_crc(&e, buf)?;
        }
        Ok(())
    }
}
