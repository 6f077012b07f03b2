//! The atomic writer: a locked temporary sibling, synced, then renamed over the target.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::io::InputError;

/// Distinguishes temporary files made by one process (several threads may write at once).
pub(super) static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The tag temporary names carry: `.NAME.tmp-PID-N`.
pub(super) const TEMP_TAG: &str = "tmp";

pub(super) fn io_err(path: &Path, source: std::io::Error) -> InputError {
    InputError::Io { path: path.display().to_string(), source }
}

/// `.NAME.tmp-PID-N` beside `path`, or `None` if `path` has no file name (`/`, `..`).
pub(super) fn temp_sibling(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_string_lossy();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    Some(path.with_file_name(format!(".{name}.{TEMP_TAG}-{}-{n}", std::process::id())))
}

/// A file being written to a temporary name; [`AtomicFile::commit`] puts it in place, dropping
/// it uncommitted removes it. The temporary file is locked while open, so a sweep by another
/// run ([`super::sweep_stale`]) never takes it for a killed run's leftover.
#[derive(Debug)]
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    out: Option<BufWriter<File>>,
}

impl AtomicFile {
    /// Starts writing `path` (no parent directory is created: use [`ensure_dir`] first).
    ///
    /// # Errors
    /// [`InputError::Invalid`] if `path` has no file name; [`InputError::Io`] naming `path` if
    /// the temporary file cannot be created.
    pub fn create(path: &Path) -> Result<Self, InputError> {
        let tmp = temp_sibling(path).ok_or_else(|| InputError::Invalid {
            path: path.display().to_string(),
            what: "not a file name to write to".into(),
        })?;
        let file = OpenOptions::new().write(true).create_new(true).open(&tmp).map_err(|e| io_err(path, e))?;
        // Advisory: a file system without locks still gets atomic writes, only a weaker sweep.
        let _ = file.try_lock();
        Ok(AtomicFile { path: path.to_path_buf(), tmp, out: Some(BufWriter::with_capacity(1 << 20, file)) })
    }

    /// Flushes, syncs and renames the file over its target.
    ///
    /// # Errors
    /// [`InputError::Io`] naming the target; the temporary file is removed then.
    pub fn commit(mut self) -> Result<(), InputError> {
        let err = |e| io_err(&self.path, e);
        let Some(w) = self.out.take() else { return Ok(()) };
        let file = w.into_inner().map_err(|e| io_err(&self.path, e.into_error()))?;
        file.sync_all().map_err(err)?;
        // Windows cannot rename a file that is open; elsewhere the lock is held until it is in place.
        #[cfg(windows)]
        drop(file);
        fs::rename(&self.tmp, &self.path).map_err(err)?;
        self.tmp = PathBuf::new();
        Ok(())
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        self.out = None;
        if !self.tmp.as_os_str().is_empty() {
            // The temporary file may be gone already: nothing to report then.
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

/// Writes go to the temporary file, buffered.
impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.out.as_mut().ok_or_else(committed)?.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.as_mut().ok_or_else(committed)?.flush()
    }
}

fn committed() -> std::io::Error {
    std::io::Error::other("the file was already committed")
}

/// Writes `bytes` to `path` atomically through an [`AtomicFile`]. An existing file at `path` is
/// replaced. No parent directory is created (use [`ensure_dir`] first).
///
/// # Errors
/// [`InputError::Io`] naming `path` if the temporary file cannot be created, written or renamed
/// (the temporary file is removed then); [`InputError::Invalid`] if `path` has no file name.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), InputError> {
    let mut f = AtomicFile::create(path)?;
    f.write_all(bytes).map_err(|e| io_err(path, e))?;
    f.commit()
}

/// Makes sure `dir` is a directory this process can create files in, creating it and its
/// parents if needed, and sweeps the temporary files killed runs left in it (once per process).
///
/// Writability is tested by creating and deleting a probe file (`.tokenclip-probe.tmp-PID-N`),
/// which also catches read-only mounts that permission bits do not show.
///
/// # Errors
/// [`InputError::Invalid`] if `dir` exists but is not a directory, or if no file can be
/// created in it; [`InputError::Io`] if it cannot be created.
pub fn ensure_dir(dir: &Path) -> Result<(), InputError> {
    let invalid = |what: String| InputError::Invalid { path: dir.display().to_string(), what };
    if dir.exists() && !dir.is_dir() {
        return Err(invalid("exists and is not a directory".into()));
    }
    fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let probe = temp_sibling(&dir.join(".tokenclip-probe")).ok_or_else(|| invalid("not a directory name".into()))?;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| invalid(format!("cannot create files in this directory: {e}")))?;
    fs::remove_file(&probe).map_err(|e| invalid(format!("cannot remove a probe file from this directory: {e}")))?;
    super::stale::sweep_once(dir);
    Ok(())
}
