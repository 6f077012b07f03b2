//! Listing folders for the layout readers: sorted, hidden entries skipped, only PNG and JPEG taken
//! as images.

use std::path::{Path, PathBuf};

use super::DatasetError;

/// Extensions decoded as images (compared case-insensitively).
pub(super) const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Image kinds that are recognised but cannot be decoded: reported rather than ignored.
const UNSUPPORTED_EXTENSIONS: [&str; 5] = ["bmp", "tif", "tiff", "webp", "gif"];

/// The suffix of a mask's file stem in the MVTec AD and folder layouts.
pub(super) const MASK_SUFFIX: &str = "_mask";

fn io_err(path: &Path, source: std::io::Error) -> DatasetError {
    DatasetError::Io { path: path.display().to_string(), source }
}

fn hidden(p: &Path) -> bool {
    p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

/// The entries of `dir`, sorted by path, hidden ones left out.
fn entries(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let p = e.map_err(|e| io_err(dir, e))?.path();
        if !hidden(&p) {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// The sub-folders of `dir` (following links), sorted, hidden ones left out.
pub(super) fn subdirs(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    Ok(entries(dir)?.into_iter().filter(|p| p.is_dir()).collect())
}

fn extension(p: &Path) -> String {
    p.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default()
}

/// Whether `p` has a PNG or JPEG extension.
pub(super) fn is_image(p: &Path) -> bool {
    IMAGE_EXTENSIONS.contains(&extension(p).as_str())
}

/// A file name without its extension, as a string.
pub(super) fn stem(p: &Path) -> String {
    p.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The PNG and JPEG files directly in `dir` (not masks: stems ending in `_mask` are left out),
/// sorted. Files of image kinds that cannot be decoded are added to `problems`; other files are
/// ignored.
pub(super) fn images(dir: &Path, problems: &mut Vec<String>) -> Result<Vec<PathBuf>, DatasetError> {
    let mut out = Vec::new();
    for p in entries(dir)? {
        if !p.is_file() {
            continue;
        }
        if is_image(&p) {
            if !stem(&p).ends_with(MASK_SUFFIX) {
                out.push(p);
            }
        } else if UNSUPPORTED_EXTENSIONS.contains(&extension(&p).as_str()) {
            problems.push(format!("{}: only PNG and JPEG images can be read; skipped", p.display()));
        }
    }
    Ok(out)
}

/// The first existing `dir/<stem>_mask.<ext>` for the image extensions (PNG first), if any.
pub(super) fn mask_beside(dir: &Path, stem: &str) -> Option<PathBuf> {
    IMAGE_EXTENSIONS.iter().map(|ext| dir.join(format!("{stem}{MASK_SUFFIX}.{ext}"))).find(|p| p.is_file())
}

/// The folder's name as a class or defect name.
pub(super) fn name_of(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| p.display().to_string())
}
