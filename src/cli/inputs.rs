//! `detect`'s INPUT arguments: files, folders (walked recursively) and glob patterns, expanded to
//! a list of images with the output name each one gets (DESIGN.md, "CLI contract").

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Extensions taken from a folder (compared case-insensitively). Files given by name or matched
/// by a pattern are taken whatever their extension.
pub const IMAGE_EXTENSIONS: [&str; 7] = ["png", "jpg", "jpeg", "bmp", "tif", "tiff", "webp"];

/// One image to process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputImage {
    /// The file, as reached from the argument (not canonicalised).
    pub path: PathBuf,
    /// Output name without suffix, relative to the output folder: the path below a folder
    /// argument without its extension (`a/x` for `data/a/x.png` under `data`), else the file
    /// stem; `x~2`, `x~3`, … when names collide.
    pub out_stem: PathBuf,
}

/// What the arguments expanded to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inputs {
    /// The images, in argument order (each folder's files sorted by path), each file once.
    pub images: Vec<InputImage>,
    /// Non-fatal problems to print: missing paths, patterns that matched nothing, folders that
    /// could not be read.
    pub problems: Vec<String>,
}

/// Expands `detect`'s INPUT arguments: an existing file is taken as is, an existing folder is
/// walked recursively for image files (hidden entries skipped, symlink loops not followed), and
/// anything else is a glob pattern (`*`, `?`, `[...]`, `**`). Files reached twice are taken once.
///
/// # Errors
/// When no image at all was found; the message lists the arguments and the problems met.
pub fn expand_inputs(args: &[String]) -> anyhow::Result<Inputs> {
    let mut found = Found::default();
    for arg in args {
        found.arg(arg);
    }
    if found.images.is_empty() {
        let mut msg = format!("no input images found in: {}", args.join(", "));
        if !found.problems.is_empty() {
            msg.push_str(&format!(" ({})", found.problems.join("; ")));
        }
        anyhow::bail!(msg);
    }
    Ok(Inputs { images: with_unique_stems(found.images), problems: found.problems })
}

/// Images gathered so far, with their natural (possibly colliding) stems.
#[derive(Default)]
struct Found {
    images: Vec<InputImage>,
    problems: Vec<String>,
    seen: HashSet<PathBuf>,
}

impl Found {
    fn arg(&mut self, arg: &str) {
        let path = Path::new(arg);
        match fs::metadata(path) {
            Ok(m) if m.is_dir() => self.folder(path),
            Ok(_) => self.file(path),
            // Checked first: Windows refuses `*` and `?` in names with an error of its own.
            Err(_) if arg.contains(['*', '?', '[']) => self.pattern(arg),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.problems.push(format!("no such file or directory: {arg}"));
            }
            Err(e) => self.problems.push(format!("{arg}: {e}")),
        }
    }

    fn pattern(&mut self, arg: &str) {
        let options = glob::MatchOptions { require_literal_leading_dot: true, ..glob::MatchOptions::new() };
        let paths = match glob::glob_with(arg, options) {
            Ok(paths) => paths,
            Err(e) => return self.problems.push(format!("invalid pattern {arg}: {e}")),
        };
        let mut matched = false;
        for entry in paths {
            matched = true;
            match entry {
                Ok(p) if p.is_dir() => self.folder(&p),
                Ok(p) => self.file(&p),
                Err(e) => self.problems.push(format!("{}: {}", e.path().display(), e.error())),
            }
        }
        if !matched {
            self.problems.push(format!("pattern matched nothing: {arg}"));
        }
    }

    fn file(&mut self, path: &Path) {
        let stem = path.file_stem().map(PathBuf::from).unwrap_or_else(|| path.to_path_buf());
        self.push(path.to_path_buf(), stem);
    }

    fn folder(&mut self, root: &Path) {
        let mut files = Vec::new();
        let mut visited = HashSet::new();
        walk(root, &mut visited, &mut files, &mut self.problems);
        files.sort();
        for file in files {
            let rel = file.strip_prefix(root).unwrap_or(&file);
            let stem = rel.with_extension("");
            self.push(file.clone(), stem);
        }
    }

    /// Takes `path` unless the same file was taken already.
    fn push(&mut self, path: PathBuf, out_stem: PathBuf) {
        let key = fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if self.seen.insert(key) {
            self.images.push(InputImage { path, out_stem });
        }
    }
}

/// Collects the image files under `dir`, skipping hidden entries and folders already visited
/// (which is what stops symlink loops).
fn walk(dir: &Path, visited: &mut HashSet<PathBuf>, files: &mut Vec<PathBuf>, problems: &mut Vec<String>) {
    if !visited.insert(fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())) {
        return;
    }
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => return problems.push(format!("cannot read folder {}: {e}", dir.display())),
    };
    for entry in entries {
        let path = match entry {
            Ok(entry) if entry.file_name().to_string_lossy().starts_with('.') => continue,
            Ok(entry) => entry.path(),
            Err(e) => {
                problems.push(format!("cannot read folder {}: {e}", dir.display()));
                continue;
            }
        };
        match fs::metadata(&path) {
            Ok(m) if m.is_dir() => walk(&path, visited, files, problems),
            Ok(_) if has_image_extension(&path) => files.push(path),
            Ok(_) => {}
            Err(e) => problems.push(format!("{}: {e}", path.display())),
        }
    }
}

fn has_image_extension(path: &Path) -> bool {
    let ext = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    IMAGE_EXTENSIONS.contains(&ext.as_str())
}

/// Renames colliding stems to `x~2`, `x~3`, … in order. Stems are compared case-insensitively,
/// so outputs do not overwrite each other on case-insensitive file systems either.
fn with_unique_stems(mut images: Vec<InputImage>) -> Vec<InputImage> {
    let key = |p: &Path| p.to_string_lossy().to_lowercase();
    let mut taken: HashSet<String> = HashSet::new();
    let mut next: HashMap<String, usize> = HashMap::new();
    for image in &mut images {
        let base = key(&image.out_stem);
        if taken.insert(base.clone()) {
            continue;
        }
        let n = next.entry(base).or_insert(2);
        let stem = image.out_stem.clone();
        let name = stem.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
        loop {
            let candidate = stem.with_file_name(format!("{name}~{n}"));
            *n += 1;
            if taken.insert(key(&candidate)) {
                image.out_stem = candidate;
                break;
            }
        }
    }
    images
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A temporary tree, removed on drop.
    struct Tree(PathBuf);

    impl Tree {
        fn new(tag: &str, files: &[&str]) -> Tree {
            let root = std::env::temp_dir().join(format!("tokenclip-inputs-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&root);
            for f in files {
                let p = root.join(f);
                fs::create_dir_all(p.parent().unwrap()).unwrap();
                fs::write(p, b"x").unwrap();
            }
            Tree(root)
        }

        fn arg(&self, rel: &str) -> String {
            self.0.join(rel).to_string_lossy().into_owned()
        }

        fn rel(&self, images: &[InputImage]) -> Vec<(String, String)> {
            let s = |p: &Path| p.to_string_lossy().replace('\\', "/");
            images.iter().map(|i| (s(i.path.strip_prefix(&self.0).unwrap()), s(&i.out_stem))).collect()
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    const FILES: [&str; 10] = [
        "data/a/x.png",
        "data/a/x.jpg",
        "data/a/notes.txt",
        "data/a/.z.png",
        "data/b/x.PNG",
        "data/.hidden/y.png",
        "data/top.JPEG",
        "data/sub/deep/k.tif",
        "other/x.png",
        "other/x~2.png",
    ];

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn folder_is_walked_sorted_with_relative_stems() {
        let t = Tree::new("walk", &FILES);
        let got = expand_inputs(&[t.arg("data")]).unwrap();
        let want = [
            ("data/a/x.jpg", "a/x"),
            ("data/a/x.png", "a/x~2"),
            ("data/b/x.PNG", "b/x"),
            ("data/sub/deep/k.tif", "sub/deep/k"),
            ("data/top.JPEG", "top"),
        ];
        assert_eq!(t.rel(&got.images), pairs(&want));
        assert!(got.problems.is_empty(), "{:?}", got.problems);
    }

    #[test]
    fn files_globs_and_collisions() {
        let t = Tree::new("glob", &FILES);
        let args = [t.arg("data/a/notes.txt"), t.arg("data/*/x.*"), t.arg("other/x*.png")];
        let got = expand_inputs(&args).unwrap();
        let want = [
            ("data/a/notes.txt", "notes"),
            ("data/a/x.jpg", "x"),
            ("data/a/x.png", "x~2"),
            ("data/b/x.PNG", "x~3"),
            ("other/x.png", "x~4"),
            ("other/x~2.png", "x~2~2"),
        ];
        assert_eq!(t.rel(&got.images), pairs(&want));
    }

    #[test]
    fn double_star_skips_hidden_and_duplicates_are_taken_once() {
        let t = Tree::new("dup", &FILES);
        let args = [t.arg("data/**/*.png"), t.arg("data/a/x.png"), t.arg("data/a/../a/x.png")];
        let got = expand_inputs(&args).unwrap();
        assert_eq!(t.rel(&got.images), pairs(&[("data/a/x.png", "x")]));
    }

    #[test]
    fn missing_paths_and_empty_patterns_are_problems() {
        let t = Tree::new("missing", &FILES);
        let (nope, empty, bad) = (t.arg("nope.png"), t.arg("data/*.bmp"), t.arg("data/[a"));
        let got = expand_inputs(&[nope.clone(), t.arg("other"), empty.clone(), bad.clone()]).unwrap();
        assert_eq!(got.images.len(), 2);
        assert_eq!(got.problems[0], format!("no such file or directory: {nope}"));
        assert_eq!(got.problems[1], format!("pattern matched nothing: {empty}"));
        assert!(got.problems[2].starts_with(&format!("invalid pattern {bad}")), "{:?}", got.problems);
    }

    #[test]
    fn nothing_found_is_an_error_listing_the_arguments() {
        let t = Tree::new("empty", &["d/readme.txt"]);
        let e = expand_inputs(&[t.arg("d"), t.arg("nope")]).unwrap_err().to_string();
        assert!(e.starts_with(&format!("no input images found in: {}, {}", t.arg("d"), t.arg("nope"))), "{e}");
        assert!(e.contains("no such file or directory"), "{e}");
        assert!(expand_inputs(&[]).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn symlink_loops_are_not_followed() {
        let t = Tree::new("loop", &["d/s/a.png"]);
        std::os::unix::fs::symlink(t.0.join("d"), t.0.join("d/s/back")).unwrap();
        let got = expand_inputs(&[t.arg("d")]).unwrap();
        assert_eq!(t.rel(&got.images), pairs(&[("d/s/a.png", "s/a")]));
    }
}
