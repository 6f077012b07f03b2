//! The layout readers on small trees of empty files (readers never decode), good and bad.

use std::path::{Path, PathBuf};

use super::{detect_layout, Dataset, DatasetError, Layout};

/// A fresh folder under the system temp dir, removed on drop.
struct Tree(PathBuf);

impl Tree {
    fn new(tag: &str, files: &[&str]) -> Tree {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let root = std::env::temp_dir().join(format!("tokenclip-dataset-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        for f in files {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            if f.ends_with('/') {
                std::fs::create_dir_all(&p).unwrap();
            } else {
                std::fs::write(&p, b"").unwrap();
            }
        }
        std::fs::create_dir_all(&root).unwrap();
        Tree(root)
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap().display().to_string()
}

fn problems_mention(ds: &Dataset, needles: &[&str]) {
    for n in needles {
        let all = ds.all_problems();
        assert!(all.iter().any(|p| p.contains(n)), "no problem mentions {n:?}: {all:#?}");
    }
}

#[test]
fn mvtec_reads_classes_labels_masks_and_reports_gaps() {
    let t = Tree::new(
        "mvtec",
        &[
            "bottle/test/good/000.png",
            "bottle/test/broken/000.png",
            "bottle/test/broken/001.PNG",
            "bottle/test/broken/002.bmp",
            "bottle/ground_truth/broken/000_mask.png",
            "bottle/train/good/000.png",
            "cable/test/good/000.png",
            "cable/test/good/.hidden.png",
            "docs/",
            "readme.txt",
        ],
    );
    assert_eq!(detect_layout(&t.0).unwrap(), Layout::Mvtec);
    let ds = Dataset::open(&t.0, None).unwrap();
    assert_eq!(ds.layout, Layout::Mvtec);
    let names: Vec<&str> = ds.classes.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["bottle", "cable"]);
    let bottle = &ds.classes[0];
    let got: Vec<(String, bool, Option<String>, &str)> = bottle
        .samples
        .iter()
        .map(|s| (rel(&t.0, &s.image), s.label, s.mask.as_ref().map(|m| rel(&t.0, m)), s.defect.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "bottle/test/broken/000.png".into(),
                true,
                Some("bottle/ground_truth/broken/000_mask.png".into()),
                "broken"
            ),
            ("bottle/test/broken/001.PNG".into(), true, None, "broken"),
            ("bottle/test/good/000.png".into(), false, None, "good"),
        ]
    );
    assert_eq!((bottle.normal(), bottle.anomalous(), bottle.masks(), bottle.defect_types()), (1, 2, 1, 1));
    assert_eq!(ds.classes[1].samples.len(), 1);
    problems_mention(&ds, &["001.PNG: no mask", "002.bmp: only PNG and JPEG", "class cable: no anomalous", "docs"]);
    let summary = ds.summary();
    assert!(summary.starts_with("MVTec AD layout in "), "{summary}");
    assert!(summary.contains("2 classes, 4 images (2 normal, 2 anomalous), 1 masks"), "{summary}");
    assert!(summary.contains("problems:"), "{summary}");
}

#[test]
fn mvtec_single_class_folder_and_class_filter() {
    let t = Tree::new(
        "mvtec-one",
        &["screw/test/good/a.png", "screw/test/thread/b.png", "screw/ground_truth/thread/b_mask.png"],
    );
    let ds = Dataset::open(&t.0.join("screw"), Some(Layout::Mvtec)).unwrap();
    assert_eq!(ds.classes.len(), 1);
    assert_eq!(ds.classes[0].name, "screw");
    assert!(ds.all_problems().is_empty(), "{:?}", ds.all_problems());
    let mut ds = Dataset::open(&t.0, None).unwrap();
    let e = ds.retain_classes(&["nut".into()]).unwrap_err();
    assert!(matches!(e, DatasetError::UnknownClass { .. }));
    assert!(e.to_string().contains("no class `nut`") && e.to_string().contains("screw"), "{e}");
    ds.retain_classes(&["screw".into()]).unwrap();
    assert_eq!(ds.len(), 2);
    assert!(ds.all_problems().is_empty(), "{:?}", ds.all_problems());
}

const VISA_CSV: &str = "object,split,label,image,mask
candle,train,normal,candle/Data/Images/Normal/0000.JPG,
candle,test,normal,candle/Data/Images/Normal/0001.JPG,
candle,test,anomaly,candle/Data/Images/Anomaly/000.JPG,candle/Data/Masks/Anomaly/000.png
candle,test,anomaly,candle/Data/Images/Anomaly/001.JPG,candle/Data/Masks/Anomaly/001.png
pcb1,test,anomaly,pcb1/Data/Images/Anomaly/404.JPG,pcb1/Data/Masks/Anomaly/404.png
pcb1,test,normal,pcb1/Data/Images/Normal/0002.JPG,
pcb1,test,broken,pcb1/Data/Images/Normal/0002.JPG,
pcb1,test
";

#[test]
fn visa_reads_the_test_split_of_1cls_csv() {
    let t = Tree::new(
        "visa",
        &[
            "candle/Data/Images/Normal/0000.JPG",
            "candle/Data/Images/Normal/0001.JPG",
            "candle/Data/Images/Anomaly/000.JPG",
            "candle/Data/Images/Anomaly/001.JPG",
            "candle/Data/Masks/Anomaly/000.png",
            "pcb1/Data/Images/Normal/0002.JPG",
        ],
    );
    t.write("split_csv/1cls.csv", VISA_CSV);
    assert_eq!(detect_layout(&t.0).unwrap(), Layout::Visa);
    let ds = Dataset::open(&t.0, None).unwrap();
    let candle = &ds.classes[0];
    assert_eq!(candle.name, "candle");
    assert_eq!((candle.normal(), candle.anomalous(), candle.masks()), (1, 2, 1));
    assert_eq!(candle.samples[1].defect, "anomaly");
    assert_eq!(rel(&t.0, candle.samples[1].mask.as_ref().unwrap()), "candle/Data/Masks/Anomaly/000.png");
    assert_eq!((ds.classes[1].name.as_str(), ds.classes[1].samples.len()), ("pcb1", 1));
    problems_mention(
        &ds,
        &[
            "001.JPG: no mask (the listed mask file is missing)",
            "404.JPG: not found (listed on line 6",
            "line 8: label `broken`",
            "line 9: expected 5 fields, got 2",
            "class pcb1: no anomalous images",
        ],
    );
}

#[test]
fn visa_without_the_needed_columns_is_an_error() {
    let t = Tree::new("visa-bad", &[]);
    t.write("split_csv/1cls.csv", "object,split,image\ncandle,test,a.JPG\n");
    let e = Dataset::open(&t.0, None).unwrap_err();
    assert!(matches!(e, DatasetError::Csv { line: 1, .. }), "{e}");
    assert!(e.to_string().contains("no `label` column"), "{e}");
}

#[test]
fn folder_layout_with_optional_masks_beside_images() {
    let t = Tree::new(
        "folder",
        &[
            "screws/good/a.png",
            "screws/scratch/b.png",
            "screws/scratch/b_mask.png",
            "screws/scratch/c.jpg",
            "screws/loose.png",
            "nuts/good/a.jpeg",
            "nuts/dent/d.png",
            "empty/",
        ],
    );
    assert_eq!(detect_layout(&t.0).unwrap(), Layout::Folder);
    let ds = Dataset::open(&t.0, None).unwrap();
    let names: Vec<&str> = ds.classes.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["nuts", "screws"]);
    let screws = &ds.classes[1];
    assert_eq!((screws.normal(), screws.anomalous(), screws.masks()), (1, 2, 1));
    assert_eq!(rel(&t.0, screws.samples[1].mask.as_ref().unwrap()), "screws/scratch/b_mask.png");
    problems_mention(
        &ds,
        &[
            "c.jpg: no mask (c_mask.png beside it)",
            "class nuts: no masks",
            "1 images directly in the class folder",
            "empty",
        ],
    );
    assert!(!ds.all_problems().iter().any(|p| p.contains("d.png")), "{:?}", ds.all_problems());

    let one = Tree::new("folder-one", &["good/1.png", "bad/2.png", "bad/2_mask.png"]);
    let ds = Dataset::open(&one.0, None).unwrap();
    assert_eq!(ds.classes.len(), 1);
    assert!(ds.classes[0].name.starts_with("tokenclip-dataset-folder-one"));
    assert!(ds.all_problems().is_empty(), "{:?}", ds.all_problems());
}

#[test]
fn folders_matching_no_layout_or_without_images_are_errors() {
    let t = Tree::new("none", &["a/b.png", "notes.txt"]);
    let e = detect_layout(&t.0).unwrap_err();
    assert!(matches!(e, DatasetError::UnknownLayout { .. }));
    let msg = e.to_string();
    assert!(msg.contains("split_csv/1cls.csv") && msg.contains("<class>/test/") && msg.contains("good/"), "{msg}");
    assert!(Dataset::open(&t.0, None).is_err());

    let empty = Tree::new("empty", &["bottle/test/good/"]);
    let e = Dataset::open(&empty.0, None).unwrap_err();
    assert!(matches!(e, DatasetError::Empty { layout: Layout::Mvtec, .. }), "{e}");

    let e = Dataset::open(&t.0.join("missing"), None).unwrap_err();
    assert!(matches!(e, DatasetError::Io { .. }), "{e}");
    assert!(e.to_string().contains("missing"), "{e}");
}

#[test]
fn training_normals_are_listed_for_few_shot_and_never_evaluated() {
    let t = Tree::new(
        "train-mvtec",
        &["a/test/good/0.png", "a/train/good/1.png", "a/train/good/0.png", "a/train/good/x.txt", "b/test/good/0.png"],
    );
    let ds = Dataset::open(&t.0, None).unwrap();
    let train: Vec<String> = ds.classes[0].train_normals.iter().map(|p| rel(&t.0, p)).collect();
    assert_eq!(train, ["a/train/good/0.png", "a/train/good/1.png"]);
    assert!(ds.classes[1].train_normals.is_empty());
    assert_eq!(ds.len(), 2);

    let t = Tree::new("train-folder", &["c/good/0.png", "c/scratch/0.png", "c/train/good/5.jpg"]);
    let ds = Dataset::open(&t.0, Some(Layout::Folder)).unwrap();
    let defects: Vec<&str> = ds.classes[0].samples.iter().map(|s| s.defect.as_str()).collect();
    assert_eq!(defects, ["good", "scratch"], "train/ is not a defect type");
    assert_eq!(ds.classes[0].train_normals.len(), 1);

    let t = Tree::new("train-visa", &["candle/t0.png", "candle/t1.png", "candle/n0.png", "candle/a0.png"]);
    t.write(
        "split_csv/1cls.csv",
        "object,split,label,image,mask\ncandle,train,normal,candle/t1.png,\ncandle,train,normal,candle/t0.png,\n\
         candle,train,anomaly,candle/a0.png,\ncandle,test,normal,candle/n0.png,\n",
    );
    let ds = Dataset::open(&t.0, None).unwrap();
    let train: Vec<String> = ds.classes[0].train_normals.iter().map(|p| rel(&t.0, p)).collect();
    assert_eq!(train, ["candle/t0.png", "candle/t1.png"]);
    assert_eq!(ds.len(), 1);
}
