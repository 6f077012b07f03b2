//! A dataset folder built from the input, read with every layout: the MVTec AD and folder
//! listings, layout detection, mask pairing and VisA's CSV against real files.
//!
//! Each input line makes one entry under a fresh folder: `a/b/` a folder, `a/b.png` an empty
//! file, `a/b.png=TEXT` a file holding TEXT, `a/b->TARGET` a symbolic link (loops included).
//! Paths are kept inside the folder (no `..` components, no absolute paths); at most 64 lines.
#![no_main]

use std::path::{Component, Path, PathBuf};

use libfuzzer_sys::fuzz_target;
use tokenclip::eval::dataset::{Dataset, Layout};

/// `p` as a path inside the root, or None if it would leave it.
fn inside(p: &str) -> Option<PathBuf> {
    let path = Path::new(p);
    let ok = !p.is_empty() && path.components().all(|c| matches!(c, Component::Normal(_)));
    (ok && path.components().count() <= 6).then(|| path.to_path_buf())
}

fn build(root: &Path, data: &[u8]) {
    for line in String::from_utf8_lossy(data).lines().take(64) {
        if let Some((link, target)) = line.split_once("->") {
            // Targets may point anywhere inside or above the link (loops are the point), but
            // never at an absolute path.
            if let (Some(l), false) = (inside(link), target.starts_with('/')) {
                if let Some(parent) = root.join(&l).parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
                #[cfg(unix)]
                let _ = std::os::unix::fs::symlink(target, root.join(l));
            }
        } else if let Some(dir) = line.strip_suffix('/') {
            if let Some(d) = inside(dir) {
                let _ = std::fs::create_dir_all(root.join(d));
            }
        } else {
            let (name, text) = line.split_once('=').unwrap_or((line, ""));
            if let Some(f) = inside(name) {
                if let Some(parent) = root.join(&f).parent() {
                    let _ = std::fs::create_dir_all(parent);
                }
                let _ = std::fs::write(root.join(f), text.replace("\\n", "\n"));
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let root = std::env::temp_dir().join(format!("tokenclip-fuzz-tree-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    if std::fs::create_dir_all(&root).is_err() {
        return;
    }
    build(&root, data);
    for layout in [None, Some(Layout::Mvtec), Some(Layout::Folder), Some(Layout::Visa)] {
        if let Ok(ds) = Dataset::open(&root, layout) {
            let _ = (ds.summary(), ds.all_problems(), ds.len());
        }
    }
    let _ = std::fs::remove_dir_all(&root);
});
