//! The atomic writer and the stale sweep.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use super::atomic::{temp_sibling, COUNTER};
use super::*;
use crate::io::InputError;

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
    let (a, b) = (temp_sibling(p).unwrap(), temp_sibling(p).unwrap());
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

/// A temporary file of a process that no longer exists is swept; a locked one, this process's
/// own and other files are not.
#[test]
fn stale_temp_files_of_dead_processes_are_swept() {
    let d = TempDir::new("sweep");
    // PID 0 is never a user process (and has no /proc entry).
    let dead = d.0.join(".a.png.tmp-0-3");
    fs::write(&dead, b"half").unwrap();
    let dead_model = d.0.join(".m.safetensors.tmp-0");
    fs::write(&dead_model, b"half").unwrap();
    let own = d.0.join(format!(".b.png.tmp-{}-0", std::process::id()));
    fs::write(&own, b"mine").unwrap();
    let held = d.0.join(".c.png.tmp-0-1");
    let lock = fs::File::create(&held).unwrap();
    lock.lock().unwrap();
    fs::write(d.0.join("keep.png"), b"x").unwrap();
    assert_eq!(sweep_stale(&d.0), 2);
    let mut want = vec![".b.png.tmp-".to_owned(), ".c.png.tmp-0-1".into(), "keep.png".into()];
    want[0].push_str(&format!("{}-0", std::process::id()));
    assert_eq!(names(&d.0), want);
    drop(lock);
}
