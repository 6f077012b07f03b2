//! Test sets on disk: MVTec AD, VisA and a plain folder layout, read into one [`Dataset`].
//!
//! A reader lists what it finds (classes, images, labels, masks) without decoding anything, and
//! collects what it could not use in [`Dataset::problems`] instead of failing, so an evaluation
//! can run on the rest and report what was left out. [`Dataset::summary`] states what was found.
//!
//! Layouts (picked by [`detect_layout`] or named):
//! - **MVTec AD** (also MPDD and other datasets laid out the same way):
//!   `DIR/<class>/test/<defect>/NAME.png`, `good` being the normal images, and masks in
//!   `DIR/<class>/ground_truth/<defect>/NAME_mask.png`. `DIR` may also be one class folder
//!   (holding `test/`). `train/good/` is listed as the class's training normals (few-shot
//!   references), never evaluated.
//! - **VisA**: the test split of `DIR/split_csv/1cls.csv` (columns `object,split,label,image,mask`,
//!   label `normal` or `anomaly`, paths relative to `DIR`, masks in
//!   `<object>/Data/Masks/Anomaly/`), as AnomalyCLIP's `generate_dataset_json/visa.py` reads it;
//!   the train split's normal rows are the training normals.
//! - **Folder** (a user's own data): `DIR/<class>/good/` holds normal images and every other
//!   sub-folder of `DIR/<class>/` anomalous ones (its name is the defect type); an anomalous image
//!   `NAME.ext` may have its mask beside it as `NAME_mask.png` (or `.jpg`/`.jpeg`). `DIR` may also
//!   be one class (holding `good/` itself; the class is then named after `DIR`). Files ending in
//!   `_mask` are never taken as images. `DIR/<class>/train/good/`, if present, holds training
//!   normals (few-shot references) and is not a defect type.
//!
//! Images are PNG or JPEG files (any letter case in the extension); other image kinds (BMP, TIFF,
//! WebP) are listed as problems, other files ignored, hidden files and folders skipped.

use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

mod error;
#[cfg(not(target_arch = "wasm32"))]
mod files;
#[cfg(not(target_arch = "wasm32"))]
mod folder;
#[cfg(not(target_arch = "wasm32"))]
mod mvtec;
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;
#[cfg(not(target_arch = "wasm32"))]
mod visa;

pub use error::DatasetError;

/// A dataset layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// MVTec AD: `<class>/test/<defect>/`, masks in `<class>/ground_truth/<defect>/`.
    Mvtec,
    /// VisA: `split_csv/1cls.csv`.
    Visa,
    /// `<class>/good/` and one folder per defect type, masks beside the images.
    Folder,
}

impl Layout {
    /// The name used on the command line (`mvtec`, `visa`, `folder`).
    pub fn name(self) -> &'static str {
        match self {
            Layout::Mvtec => "mvtec",
            Layout::Visa => "visa",
            Layout::Folder => "folder",
        }
    }

    /// A human-readable name ("MVTec AD", "VisA", "folder").
    pub fn title(self) -> &'static str {
        match self {
            Layout::Mvtec => "MVTec AD",
            Layout::Visa => "VisA",
            Layout::Folder => "folder",
        }
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Layout {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "mvtec" | "mvtec_ad" | "mvtec-ad" => Ok(Layout::Mvtec),
            "visa" => Ok(Layout::Visa),
            "folder" => Ok(Layout::Folder),
            other => Err(format!("unknown layout `{other}` (expected mvtec, visa or folder)")),
        }
    }
}

/// One test image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Sample {
    /// The image file.
    pub image: PathBuf,
    /// True for an anomalous image.
    pub label: bool,
    /// Its ground-truth mask, if it has one (normal images never do: their mask is all zero).
    pub mask: Option<PathBuf>,
    /// The defect type (`good` for normal images; VisA has no types: `anomaly`).
    pub defect: String,
}

/// The test images of one class (object category), in a stable order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClassSet {
    /// The class name.
    pub name: String,
    /// Its images.
    pub samples: Vec<Sample>,
    /// What the reader could not use or found incomplete in this class, one sentence each.
    pub problems: Vec<String>,
    /// Its normal training images, sorted (MVTec AD's `train/good/`, VisA's train split, the
    /// folder layout's `train/good/`): what `eval --shots` draws few-shot references from.
    #[serde(skip)]
    pub train_normals: Vec<PathBuf>,
}

impl ClassSet {
    /// Normal images.
    pub fn normal(&self) -> usize {
        self.samples.iter().filter(|s| !s.label).count()
    }

    /// Anomalous images.
    pub fn anomalous(&self) -> usize {
        self.samples.iter().filter(|s| s.label).count()
    }

    /// Anomalous images with a mask.
    pub fn masks(&self) -> usize {
        self.samples.iter().filter(|s| s.label && s.mask.is_some()).count()
    }

    /// Distinct defect types of the anomalous images.
    pub fn defect_types(&self) -> usize {
        let mut d: Vec<&str> = self.samples.iter().filter(|s| s.label).map(|s| s.defect.as_str()).collect();
        d.sort_unstable();
        d.dedup();
        d.len()
    }
}

/// A test set: classes in name order, and what could not be used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Dataset {
    /// The folder it was read from.
    pub root: PathBuf,
    /// Its layout.
    pub layout: Layout,
    /// The classes, sorted by name, each with at least one image.
    pub classes: Vec<ClassSet>,
    /// What was left out outside any class (folders that are not classes, unreadable split
    /// rows), one sentence each naming the file; see also [`ClassSet::problems`].
    pub problems: Vec<String>,
}

impl Dataset {
    /// All images.
    pub fn len(&self) -> usize {
        self.classes.iter().map(|c| c.samples.len()).sum()
    }

    /// Whether there is no image at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every problem: those outside classes, then each class's.
    pub fn all_problems(&self) -> Vec<String> {
        self.problems.iter().chain(self.classes.iter().flat_map(|c| &c.problems)).cloned().collect()
    }

    /// Keeps only the classes named in `names` (in the dataset's order), with their problems.
    ///
    /// # Errors
    /// [`DatasetError::UnknownClass`] for a name that is not a class (listing those there are).
    pub fn retain_classes(&mut self, names: &[String]) -> Result<(), DatasetError> {
        if let Some(bad) = names.iter().find(|n| !self.classes.iter().any(|c| &c.name == *n)) {
            let available = self.classes.iter().map(|c| c.name.clone()).collect::<Vec<_>>().join(", ");
            return Err(DatasetError::UnknownClass { name: bad.clone(), available });
        }
        self.classes.retain(|c| names.contains(&c.name));
        Ok(())
    }

    /// What was found, for people: layout and folder, totals, one line per class, then the
    /// problems.
    pub fn summary(&self) -> String {
        let sum = |f: fn(&ClassSet) -> usize| self.classes.iter().map(f).sum::<usize>();
        let (normal, anomalous, masks) = (sum(ClassSet::normal), sum(ClassSet::anomalous), sum(ClassSet::masks));
        let mut out = format!(
            "{} layout in {}: {} classes, {} images ({normal} normal, {anomalous} anomalous), {masks} masks\n",
            self.layout.title(),
            self.root.display(),
            self.classes.len(),
            self.len()
        );
        let width = self.classes.iter().map(|c| c.name.chars().count()).max().unwrap_or(0);
        for c in &self.classes {
            out.push_str(&format!(
                "  {:width$}  {:>5} images: {:>4} normal, {:>4} anomalous ({} defect types), {:>4} masks\n",
                c.name,
                c.samples.len(),
                c.normal(),
                c.anomalous(),
                c.defect_types(),
                c.masks()
            ));
        }
        let problems = self.all_problems();
        if !problems.is_empty() {
            out.push_str(&format!("{} problems:\n", problems.len()));
            for p in &problems {
                out.push_str(&format!("  - {p}\n"));
            }
        }
        out
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub use native::detect_layout;

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::path::Path;

    use super::{files, folder, mvtec, visa, Dataset, DatasetError, Layout};

    /// Which layout `dir` has: VisA if it holds `split_csv/1cls.csv`; MVTec AD if it or one of
    /// its sub-folders holds `test/`; the folder layout if it or one of its sub-folders holds
    /// `good/`.
    ///
    /// # Errors
    /// [`DatasetError::Io`] if `dir` cannot be listed; [`DatasetError::UnknownLayout`] if it
    /// matches none (the message says what each layout needs).
    pub fn detect_layout(dir: &Path) -> Result<Layout, DatasetError> {
        if dir.join(visa::CSV).is_file() {
            return Ok(Layout::Visa);
        }
        let subdirs = files::subdirs(dir)?;
        let has = |name: &str| dir.join(name).is_dir() || subdirs.iter().any(|d| d.join(name).is_dir());
        if has("test") {
            Ok(Layout::Mvtec)
        } else if has(folder::NORMAL) {
            Ok(Layout::Folder)
        } else {
            Err(DatasetError::UnknownLayout { dir: dir.display().to_string() })
        }
    }

    impl Dataset {
        /// Reads the test set in `dir` with `layout`, or the one [`detect_layout`] finds.
        ///
        /// # Errors
        /// [`DatasetError::Io`] if `dir` or a folder in it cannot be listed;
        /// [`DatasetError::UnknownLayout`] as [`detect_layout`]; [`DatasetError::Csv`] for a VisA
        /// split file without the needed columns; [`DatasetError::Empty`] if no image was found.
        /// Files that cannot be used are not errors: they are listed in [`Dataset::problems`].
        pub fn open(dir: &Path, layout: Option<Layout>) -> Result<Dataset, DatasetError> {
            if !dir.is_dir() {
                return Err(DatasetError::Io {
                    path: dir.display().to_string(),
                    source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a folder"),
                });
            }
            let layout = match layout {
                Some(l) => l,
                None => detect_layout(dir)?,
            };
            let mut ds = Dataset { root: dir.to_path_buf(), layout, classes: Vec::new(), problems: Vec::new() };
            match layout {
                Layout::Mvtec => mvtec::read(dir, &mut ds)?,
                Layout::Visa => visa::read(dir, &mut ds)?,
                Layout::Folder => folder::read(dir, &mut ds)?,
            }
            // A class without images keeps nothing but its problems.
            for c in ds.classes.iter_mut().filter(|c| c.samples.is_empty()) {
                ds.problems.append(&mut c.problems);
            }
            ds.classes.retain(|c| !c.samples.is_empty());
            ds.classes.sort_by(|a, b| a.name.cmp(&b.name));
            for c in &mut ds.classes {
                if c.anomalous() == 0 {
                    c.problems
                        .push(format!("class {}: no anomalous images; its AUROC and pixel metrics are n/a", c.name));
                } else if c.normal() == 0 {
                    c.problems.push(format!("class {}: no normal images; its AUROC is n/a", c.name));
                }
            }
            if ds.is_empty() {
                return Err(DatasetError::Empty { dir: dir.display().to_string(), layout });
            }
            Ok(ds)
        }
    }
}
