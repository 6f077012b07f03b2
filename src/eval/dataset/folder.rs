//! The folder layout for a user's own data: `<class>/good/` normal, every other sub-folder of
//! `<class>/` anomalous (named by its defect type), masks optional as `NAME_mask.png` beside
//! `NAME.ext`. The dataset folder may also be a single class (holding `good/` itself).
//! `<class>/train/good/` holds training normals (few-shot references), not a defect type.

use std::path::Path;

use super::files::{images, mask_beside, name_of, stem, subdirs, MASK_SUFFIX};
use super::{ClassSet, Dataset, DatasetError, Sample};

/// The folder of normal images.
pub(super) const NORMAL: &str = "good";
/// The folder of training images (`train/good/`: few-shot references), not a defect type.
const TRAIN: &str = "train";

/// Reads `dir` (class folders, or one class) into `ds`.
pub(super) fn read(dir: &Path, ds: &mut Dataset) -> Result<(), DatasetError> {
    if dir.join(NORMAL).is_dir() {
        let name = dir.canonicalize().map(|p| name_of(&p)).unwrap_or_else(|_| name_of(dir));
        return class(dir, name, ds);
    }
    for cdir in subdirs(dir)? {
        let mut ignored = Vec::new();
        let has_images = subdirs(&cdir)?.iter().any(|d| images(d, &mut ignored).is_ok_and(|v| !v.is_empty()));
        if cdir.join(NORMAL).is_dir() || has_images {
            class(&cdir, name_of(&cdir), ds)?;
        } else {
            ds.problems
                .push(format!("{}: no good/ or defect folders with images, not a class; skipped", cdir.display()));
        }
    }
    Ok(())
}

fn class(cdir: &Path, name: String, ds: &mut Dataset) -> Result<(), DatasetError> {
    let mut problems = Vec::new();
    let loose = images(cdir, &mut problems)?;
    if !loose.is_empty() {
        problems.push(format!(
            "{}: {} images directly in the class folder are not used (put them in good/ or a defect folder)",
            cdir.display(),
            loose.len()
        ));
    }
    let mut samples = Vec::new();
    let mut missing = Vec::new();
    for ddir in subdirs(cdir)? {
        let defect = name_of(&ddir);
        if defect == TRAIN {
            continue;
        }
        let label = defect != NORMAL;
        for image in images(&ddir, &mut problems)? {
            let mask = if label { mask_beside(&ddir, &stem(&image)) } else { None };
            if label && mask.is_none() {
                missing.push(image.clone());
            }
            samples.push(Sample { image, label, mask, defect: defect.clone() });
        }
    }
    let anomalous = samples.iter().filter(|s| s.label).count();
    if anomalous > 0 && missing.len() == anomalous {
        // Masks are optional: a class without any is evaluated at image level only.
        problems.push(format!(
            "class {name}: no masks ({cdir}/<defect>/NAME{MASK_SUFFIX}.png); pixel metrics not evaluated",
            cdir = cdir.display()
        ));
    } else {
        for image in missing {
            problems.push(format!(
                "{}: no mask ({}{MASK_SUFFIX}.png beside it); left out of the pixel metrics",
                image.display(),
                stem(&image)
            ));
        }
    }
    let train_normals = super::mvtec::train_normals(cdir)?;
    ds.classes.push(ClassSet { name, samples, problems, train_normals });
    Ok(())
}
