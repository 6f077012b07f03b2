//! The MVTec AD layout: `<class>/test/<defect>/NAME.png`, masks in
//! `<class>/ground_truth/<defect>/NAME_mask.png`, `good` without masks.
//!
//! AnomalyCLIP's `generate_dataset_json/mvtec.py` pairs images and masks by their sorted
//! position; here a mask is found by name, which gives the same pairs on MVTec AD and reports a
//! missing mask instead of shifting the others.

use std::path::{Path, PathBuf};

use super::files::{images, mask_beside, name_of, stem, subdirs, MASK_SUFFIX};
use super::{ClassSet, Dataset, DatasetError, Sample};

/// The folder of normal test images.
const NORMAL: &str = "good";

/// The images of `cdir/train/good/`, sorted (none if it is absent); what cannot be used there
/// is not a problem of the test set.
pub(super) fn train_normals(cdir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let dir = cdir.join("train").join(NORMAL);
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    let mut ignored = Vec::new();
    images(&dir, &mut ignored)
}

/// Reads `dir` (a dataset of class folders, or one class folder) into `ds`.
pub(super) fn read(dir: &Path, ds: &mut Dataset) -> Result<(), DatasetError> {
    if dir.join("test").is_dir() {
        let name = dir.canonicalize().map(|p| name_of(&p)).unwrap_or_else(|_| name_of(dir));
        return class(dir, name, ds);
    }
    for cdir in subdirs(dir)? {
        if cdir.join("test").is_dir() {
            class(&cdir, name_of(&cdir), ds)?;
        } else {
            ds.problems.push(format!("{}: no test/ folder, not a class; skipped", cdir.display()));
        }
    }
    Ok(())
}

fn class(cdir: &Path, name: String, ds: &mut Dataset) -> Result<(), DatasetError> {
    let (mut samples, mut problems) = (Vec::new(), Vec::new());
    for ddir in subdirs(&cdir.join("test"))? {
        let defect = name_of(&ddir);
        let label = defect != NORMAL;
        let gt: PathBuf = cdir.join("ground_truth").join(&defect);
        for image in images(&ddir, &mut problems)? {
            let mask = if label { mask_beside(&gt, &stem(&image)) } else { None };
            if label && mask.is_none() {
                problems.push(format!(
                    "{}: no mask (expected {}); left out of the pixel metrics",
                    image.display(),
                    gt.join(format!("{}{MASK_SUFFIX}.png", stem(&image))).display()
                ));
            }
            samples.push(Sample { image, label, mask, defect: defect.clone() });
        }
    }
    let train_normals = train_normals(cdir)?;
    ds.classes.push(ClassSet { name, samples, problems, train_normals });
    Ok(())
}
