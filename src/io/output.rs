//! Writing output files so that a crash never leaves a half-written one behind (DESIGN.md, "CLI
//! contract"): every file goes to a unique temporary name in its own directory, is synced, and is
//! then renamed over the final name, which is atomic on one file system.
//!
//! Only built natively; in the browser, outputs are handed to JavaScript instead of written.

#[cfg(not(target_arch = "wasm32"))]
pub use native::{ensure_dir, write_atomic};

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::fs::{self, OpenOptions};
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};

    use crate::io::InputError;

    /// Distinguishes temporary files made by one process (several threads may write at once).
    static COUNTER: AtomicU64 = AtomicU64::new(0);

    fn io_err(path: &Path, source: std::io::Error) -> InputError {
        InputError::Io { path: path.display().to_string(), source }
    }

    /// `.NAME.tmp-PID-N` beside `path`, or `None` if `path` has no file name (`/`, `..`).
    fn temp_sibling(path: &Path, tag: &str) -> Option<PathBuf> {
        let name = path.file_name()?.to_string_lossy();
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Some(path.with_file_name(format!(".{name}.{tag}-{}-{n}", std::process::id())))
    }

    /// Writes `bytes` to `path` atomically: to a fresh temporary file in the same directory
    /// (`.NAME.tmp-PID-N`), synced to disk, then renamed over `path`.
    ///
    /// An existing file at `path` is replaced. No parent directory is created (use
    /// [`ensure_dir`] first).
    ///
    /// # Errors
    /// [`InputError::Io`] naming `path` if the temporary file cannot be created, written or
    /// renamed (the temporary file is removed then); [`InputError::Invalid`] if `path` has no
    /// file name.
    pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), InputError> {
        let tmp = temp_sibling(path, "tmp").ok_or_else(|| InputError::Invalid {
            path: path.display().to_string(),
            what: "not a file name to write to".into(),
        })?;
        let result = write_then_rename(&tmp, path, bytes);
        if result.is_err() {
            // The temporary file may not exist (creation failed): nothing to report then.
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn write_then_rename(tmp: &Path, path: &Path, bytes: &[u8]) -> Result<(), InputError> {
        let err = |e| io_err(path, e);
        let mut file = OpenOptions::new().write(true).create_new(true).open(tmp).map_err(err)?;
        file.write_all(bytes).map_err(err)?;
        file.sync_all().map_err(err)?;
        drop(file);
        fs::rename(tmp, path).map_err(err)
    }

    /// Makes sure `dir` is a directory this process can create files in, creating it and its
    /// parents if needed.
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
        let probe =
            temp_sibling(&dir.join(".tokenclip-probe"), "tmp").ok_or_else(|| invalid("not a directory name".into()))?;
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)
            .map_err(|e| invalid(format!("cannot create files in this directory: {e}")))?;
        fs::remove_file(&probe).map_err(|e| invalid(format!("cannot remove a probe file from this directory: {e}")))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// A fresh empty directory under the system temp dir, removed on drop.
        struct TempDir(PathBuf);

        impl TempDir {
            fn new(tag: &str) -> Self {
                let n = COUNTER.fetch_add(1, Ordering::Relaxed);
                let p = std::env::temp_dir().join(format!("tokenclip-output-{tag}-{}-{n}", std::process::id()));
                let _ = fs::remove_dir_all(&p);
                fs::create_dir_all(&p).unwrap();
                TempDir(p)
            }
        }

        impl Drop for TempDir {
            fn drop(&mut self) {
                let _ = fs::remove_dir_all(&self.0);
            }
        }

        fn names(dir: &Path) -> Vec<String> {
            let mut v: Vec<String> =
                fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
            v.sort();
            v
        }

        #[test]
        fn write_atomic_writes_and_replaces_leaving_no_temp_file() {
            let d = TempDir::new("write");
            let p = d.0.join("a.txt");
            write_atomic(&p, b"first").unwrap();
            write_atomic(&p, b"second, longer").unwrap();
            assert_eq!(fs::read(&p).unwrap(), b"second, longer");
            assert_eq!(names(&d.0), ["a.txt"]);
        }

        #[test]
        fn write_atomic_creates_no_parent_and_names_the_path() {
            let d = TempDir::new("noparent");
            let p = d.0.join("missing").join("a.txt");
            let e = write_atomic(&p, b"x").unwrap_err();
            assert!(matches!(e, InputError::Io { .. }));
            assert!(e.to_string().contains("missing/a.txt"), "{e}");
            assert!(!d.0.join("missing").exists());
        }

        #[test]
        fn write_atomic_failed_rename_removes_the_temp_file() {
            let d = TempDir::new("rename");
            let target = d.0.join("busy");
            fs::create_dir_all(target.join("inside")).unwrap();
            let e = write_atomic(&target, b"x").unwrap_err();
            assert!(e.to_string().contains("busy"), "{e}");
            assert_eq!(names(&d.0), ["busy"]);
        }

        #[test]
        fn write_atomic_rejects_a_path_without_file_name() {
            assert!(matches!(write_atomic(Path::new("/"), b"x"), Err(InputError::Invalid { .. })));
        }

        #[test]
        fn temp_names_are_hidden_unique_and_carry_the_pid() {
            let p = Path::new("out/x.png");
            let (a, b) = (temp_sibling(p, "tmp").unwrap(), temp_sibling(p, "tmp").unwrap());
            assert_ne!(a, b);
            let name = a.file_name().unwrap().to_string_lossy().into_owned();
            assert!(name.starts_with(&format!(".x.png.tmp-{}-", std::process::id())), "{name}");
            assert_eq!(a.parent(), Some(Path::new("out")));
        }

        #[test]
        fn ensure_dir_creates_nested_and_leaves_no_probe() {
            let d = TempDir::new("ensure");
            let nested = d.0.join("a").join("b");
            ensure_dir(&nested).unwrap();
            ensure_dir(&nested).unwrap();
            assert!(nested.is_dir());
            assert!(names(&nested).is_empty());
        }

        #[test]
        fn ensure_dir_refuses_a_file() {
            let d = TempDir::new("file");
            let f = d.0.join("f");
            fs::write(&f, b"").unwrap();
            let e = ensure_dir(&f).unwrap_err();
            assert!(e.to_string().contains("not a directory"), "{e}");
            let e = ensure_dir(&f.join("sub")).unwrap_err();
            assert!(matches!(e, InputError::Io { .. }), "{e}");
        }
    }
}
