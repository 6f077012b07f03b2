//! Bytes read at any offset, wherever they live: a file on disk, a download held in browser
//! memory, a buffer in a test. Checkpoint readers ([`crate::clip::safetensors`], the torch zip
//! reader) are written against [`RandomAccess`], so the importer runs unchanged natively and in
//! wasm, and a multi-GB file is read tensor by tensor, never whole.

use std::io::{Read, Seek, SeekFrom};

/// `Send + Sync` natively, nothing in wasm (where a JS array is neither and there are no threads).
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSendSync: Send + Sync {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send + Sync + ?Sized> MaybeSendSync for T {}
/// `Send + Sync` natively, nothing in wasm (where a JS array is neither and there are no threads).
#[cfg(target_arch = "wasm32")]
pub trait MaybeSendSync {}
#[cfg(target_arch = "wasm32")]
impl<T: ?Sized> MaybeSendSync for T {}

/// A byte source with a known length that can be read at any offset.
pub trait RandomAccess: MaybeSendSync {
    /// Length in bytes.
    fn len(&self) -> u64;

    /// True when there are no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fills `buf` with the bytes at `offset`; an error if they run past the end.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()>;
}

fn past_end(offset: u64, n: usize, len: u64) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        format!("{n} bytes at offset {offset} run past the end of the {len} bytes"),
    )
}

impl RandomAccess for Vec<u8> {
    fn len(&self) -> u64 {
        self.as_slice().len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        let start = usize::try_from(offset).ok();
        let src = start.and_then(|s| self.get(s..s.checked_add(buf.len())?));
        let src = src.ok_or_else(|| past_end(offset, buf.len(), self.as_slice().len() as u64))?;
        buf.copy_from_slice(src);
        Ok(())
    }
}

#[cfg(not(target_arch = "wasm32"))]
impl RandomAccess for std::fs::File {
    fn len(&self) -> u64 {
        self.metadata().map(|m| m.len()).unwrap_or(0)
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
        read_exact_at(self, buf, offset)
    }
}

#[cfg(all(unix, not(target_arch = "wasm32")))]
fn read_exact_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(all(windows, not(target_arch = "wasm32")))]
fn read_exact_at(file: &std::fs::File, mut buf: &mut [u8], mut offset: u64) -> std::io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(file, buf, offset) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(all(not(unix), not(windows), not(target_arch = "wasm32")))]
fn read_exact_at(file: &std::fs::File, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    let mut f = file;
    f.seek(SeekFrom::Start(offset))?;
    f.read_exact(buf)
}

/// A file opened as a boxed [`RandomAccess`].
#[cfg(not(target_arch = "wasm32"))]
pub fn open_file(path: &std::path::Path) -> std::io::Result<Box<dyn RandomAccess>> {
    Ok(Box::new(std::fs::File::open(path)?))
}

/// A `Read + Seek` cursor over a [`RandomAccess`] (what the zip reader takes).
pub struct Cursor {
    src: Box<dyn RandomAccess>,
    pos: u64,
}

impl std::fmt::Debug for Cursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cursor").field("len", &self.src.len()).field("pos", &self.pos).finish()
    }
}

impl Cursor {
    /// A cursor at the start of `src`.
    pub fn new(src: Box<dyn RandomAccess>) -> Self {
        Cursor { src, pos: 0 }
    }
}

impl Read for Cursor {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.src.len().saturating_sub(self.pos);
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        self.src.read_at(self.pos, &mut buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Cursor {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let len = self.src.len();
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos =
            target.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek before the start"))?;
        Ok(self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vec_reads_in_range_and_refuses_past_the_end() {
        let v: Vec<u8> = (0..10).collect();
        let mut buf = [0u8; 3];
        v.read_at(7, &mut buf).unwrap();
        assert_eq!(buf, [7, 8, 9]);
        assert!(v.read_at(8, &mut buf).is_err());
        assert!(v.read_at(u64::MAX, &mut buf).is_err());
    }

    #[test]
    fn cursor_reads_and_seeks_like_a_file() {
        let mut c = Cursor::new(Box::new((0u8..10).collect::<Vec<u8>>()));
        assert_eq!(c.seek(SeekFrom::End(-2)).unwrap(), 8);
        let mut out = Vec::new();
        c.read_to_end(&mut out).unwrap();
        assert_eq!(out, [8, 9]);
        assert!(c.seek(SeekFrom::Current(-20)).is_err());
    }
}
