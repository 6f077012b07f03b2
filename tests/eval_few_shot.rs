//! `eval --shots K --seed S` on a small synthetic MVTec AD-layout dataset (textures with drawn
//! defects, `train/good/` normals) and the tiny model: the draw is reported and repeatable, the
//! few-shot pixel AUROC beats zero-shot's on the same model, results are cached apart from
//! zero-shot ones, and K beyond the training normals is refused naming how many exist.

mod common;

use std::path::Path;

use common::cli::{run, stderr, tiny_model};
use common::clip::scratch;
use common::dataset::textured;
use serde_json::Value;

/// Class `tex`: 4 training normals, 2 normal and 4 anomalous test images with masks; class
/// `other`: 2 training normals, 1 normal and 1 anomalous test image. Seeds 30 apart share a tint.
fn make_dataset(root: &Path) {
    let save = |rel: String, img: &image::RgbImage| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        img.save(&p).unwrap();
    };
    let defects = [(20.0, 22.0, 9.0, 6.0), (44.0, 40.0, 7.0, 10.0), (30.0, 50.0, 12.0, 5.0), (12.0, 12.0, 6.0, 6.0)];
    for i in 0..4u32 {
        save(format!("tex/train/good/{i:03}.png"), &textured(64, 64, 5 + 30 * i, None).0);
        let (img, mask) = textured(64, 64, 185 + 30 * i, Some(defects[i as usize]));
        save(format!("tex/test/spot/{i:03}.png"), &img);
        let p = root.join(format!("tex/ground_truth/spot/{i:03}_mask.png"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        mask.save(&p).unwrap();
    }
    for i in 0..2u32 {
        save(format!("tex/test/good/{i:03}.png"), &textured(64, 64, 125 + 30 * i, None).0);
        save(format!("other/train/good/{i:03}.png"), &textured(64, 64, 7 + 30 * i, None).0);
    }
    save("other/test/good/000.png".into(), &textured(64, 64, 67, None).0);
    let (img, mask) = textured(64, 64, 97, Some(defects[0]));
    save("other/test/spot/000.png".into(), &img);
    let p = root.join("other/ground_truth/spot/000_mask.png");
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    mask.save(&p).unwrap();
}

fn eval(model: &Path, data: &Path, out: &Path, extra: &[&str]) -> std::process::Output {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
        vec![&"--backend", &"cpu", &"eval", &"--model", &model, &"--data", &data, &"--out", &out];
    for e in extra {
        args.push(e);
    }
    run(&args, &[])
}

fn report(out: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap()
}

fn pixel_auroc(r: &Value, class: &str) -> f64 {
    let c = r["classes"].as_array().unwrap().iter().find(|c| c["class"] == class).unwrap();
    c["pixel_auroc"]["value"].as_f64().unwrap()
}

#[test]
fn shots_draw_training_normals_repeatably_and_beat_zero_shot() {
    let dir = scratch("eval_few_shot");
    let model = tiny_model(&dir);
    let data = dir.join("data");
    make_dataset(&data);
    let (zero, few) = (dir.join("zero"), dir.join("few"));
    let o = eval(&model, &data, &zero, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = eval(&model, &data, &few, &["--shots", "2", "--seed", "3"]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    let (z, f) = (report(&zero), report(&few));
    assert!(z.get("few_shot").is_none(), "a zero-shot report names no references");
    let fs = &f["few_shot"];
    assert_eq!((fs["shots"].as_u64(), fs["seed"].as_u64()), (Some(2), Some(3)), "{fs}");
    let drawn: Vec<&str> = fs["references"]["tex"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(drawn.len(), 2);
    assert!(drawn.iter().all(|p| p.starts_with("tex/train/good/")), "{drawn:?}");
    assert_eq!(fs["references"]["other"].as_array().unwrap().len(), 2);
    let md = std::fs::read_to_string(few.join("report.md")).unwrap();
    assert!(md.contains("Few-shot: k = 2 normal training images per class, drawn with seed 3"), "{md}");
    assert!(md.contains(&format!("tex: {}", drawn.join(", "))), "{md}");

    let (zs, fsa) = (pixel_auroc(&z, "tex"), pixel_auroc(&f, "tex"));
    eprintln!("class tex pixel AUROC: zero-shot {zs:.4}, --shots 2 {fsa:.4} (+{:.4})", fsa - zs);
    assert!(fsa > zs + 0.1, "few-shot pixel AUROC {fsa:.4} does not beat zero-shot {zs:.4} by 0.1");

    // The same seed draws the same images and every result comes from the cache; another seed
    // draws others and detects again.
    let o = eval(&model, &data, &few, &["--shots", "2", "--seed", "3"]);
    let err = stderr(&o);
    assert!(o.status.success() && err.contains("cached: 8, computed: 0"), "{err}");
    assert_eq!(report(&few)["few_shot"], *fs);
    let other = dir.join("other-seed");
    let o = eval(
        &model,
        &data,
        &other,
        &["--shots", "2", "--seed", "4", "--cache", &few.join("cache").display().to_string()],
    );
    assert!(o.status.success() && stderr(&o).contains("computed: 8"), "{}", stderr(&o));
    assert_ne!(report(&other)["few_shot"]["references"], fs["references"], "seeds 3 and 4 draw alike");
}

#[test]
fn more_shots_than_training_normals_are_refused() {
    let dir = scratch("eval_few_shot_refused");
    let model = tiny_model(&dir);
    let data = dir.join("data");
    make_dataset(&data);
    let out = dir.join("out");
    let o = eval(&model, &data, &out, &["--shots", "3"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--shots 3 needs 3 normal training images per class") && err.contains("class other has 2"),
        "{err}"
    );
    assert!(!out.join("report.json").exists());
    // One class alone has enough.
    let o = eval(&model, &data, &out, &["--shots", "3", "--classes", "tex"]);
    assert!(o.status.success(), "{}", stderr(&o));
}
