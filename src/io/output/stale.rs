//! Sweeping the temporary files (`.NAME.tmp-PID[-N]`) that runs killed mid-write left behind.
//!
//! A temporary file is stale when its writer is gone: no process with its PID is alive (where
//! the system tells: `/proc` on Linux) and no lock is held on it (its writer locks it while
//! open). This process's own files are never touched.

use std::collections::HashSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::atomic::TEMP_TAG;

/// The PID in a temporary file's name, if the name is one (`.NAME.tmp-PID` or `.NAME.tmp-PID-N`).
fn temp_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?;
    let (_, tail) = rest.rsplit_once(&format!(".{TEMP_TAG}-"))?;
    let mut parts = tail.split('-');
    let pid = parts.next()?.parse().ok()?;
    match (parts.next(), parts.next()) {
        (None, _) => Some(pid),
        (Some(n), None) if n.bytes().all(|b| b.is_ascii_digit()) && !n.is_empty() => Some(pid),
        _ => None,
    }
}

/// False only when the system says no process `pid` exists.
fn may_be_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        // Unknown here: the lock alone decides.
        false
    }
}

/// Removes the stale temporary files directly in `dir`; returns how many. Errors (an unreadable
/// folder, a file that vanished) are ignored: sweeping is housekeeping, never a reason to fail.
pub fn sweep_stale(dir: &Path) -> usize {
    let Ok(entries) = fs::read_dir(dir) else { return 0 };
    let own = std::process::id();
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = temp_pid(&name.to_string_lossy()) else { continue };
        if pid == own || may_be_alive(pid) || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let path = entry.path();
        // A writer holds the lock for as long as its file exists under this name.
        let unlocked = File::open(&path).is_ok_and(|f| f.try_lock().is_ok());
        if unlocked && fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// [`sweep_stale`] for `dir`, the first time this process asks for it.
pub(super) fn sweep_once(dir: &Path) {
    static SWEPT: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);
    let key = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let first = SWEPT.lock().is_ok_and(|mut s| s.get_or_insert_with(HashSet::new).insert(key));
    if first {
        sweep_stale(dir);
    }
}

#[cfg(test)]
mod tests {
    use super::temp_pid;

    #[test]
    fn temp_names_are_recognised_and_nothing_else() {
        assert_eq!(temp_pid(".a.png.tmp-123-4"), Some(123));
        assert_eq!(temp_pid(".model.safetensors.tmp-77"), Some(77));
        assert_eq!(temp_pid(".x.tmp-1.tmp-9-0"), Some(9));
        for other in ["a.png", ".a.png", ".a.tmp-", ".a.tmp-x-1", ".a.tmp-1-2-3", "a.tmp-1-2", ".a.tmp-1-"] {
            assert_eq!(temp_pid(other), None, "{other}");
        }
    }
}
