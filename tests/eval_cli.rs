//! `tokenclip eval` end to end on a small synthetic MVTec AD-layout dataset made here (textured
//! images with drawn defects and their masks) and the tiny detection model (S = 64, CPU):
//! - the report's structure (Markdown, JSON, CSV; class rows and the mean row; plots);
//! - its numbers equal the metric functions applied to the maps it cached and the masks read
//!   back, and the means equal the mean of the class values;
//! - bad input: an unreadable image, a missing mask, a mask of the wrong size and a class without
//!   anomalous images are reported by name, skipped, marked in the report, and the exit status is 2;
//!   a clean subset exits 0;
//! - caching: a rerun detects nothing (`cached: N`) and writes the same report; a damaged or
//!   truncated entry is recomputed, never trusted; a missing one (an interrupted run) is the only
//!   image detected again.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::clip::scratch;
use common::dataset::textured;
use common::detect::{import_variant, DetectFixture};
use serde_json::Value;
use tokenclip::eval::cache::decode_entry;
use tokenclip::eval::mask::read_mask;
use tokenclip::eval::{image_metrics, pixel_metrics_exact, Metric, PixelImage};

const S: usize = 64;

fn tokenclip(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tokenclip"))
        .args(args.iter().map(|a| a.as_ref()))
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `alpha`: clean (3 good, 3 `scratch` with masks, 80×72 images so masks are resized);
/// `beta`: 3 good, `hole` with a good mask, a missing mask, a mask of the wrong size, and an
/// unreadable image; `gamma`: good images only.
fn make_dataset(root: &Path) {
    let save = |rel: &str, img: &image::RgbImage| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        img.save(&p).unwrap();
    };
    let save_mask = |rel: &str, m: &image::GrayImage| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        m.save(&p).unwrap();
    };
    for i in 0..3u32 {
        save(&format!("alpha/test/good/00{i}.png"), &textured(80, 72, i, None).0);
        let (img, mask) = textured(80, 72, 10 + i, Some((20.0 + 15.0 * i as f32, 30.0, 9.0 + i as f32, 6.0)));
        save(&format!("alpha/test/scratch/00{i}.png"), &img);
        save_mask(&format!("alpha/ground_truth/scratch/00{i}_mask.png"), &mask);
        save(&format!("beta/test/good/00{i}.png"), &textured(64, 64, 20 + i, None).0);
        save(&format!("gamma/test/good/00{i}.png"), &textured(48, 40, 30 + i, None).0);
    }
    for i in 0..3u32 {
        let (img, mask) = textured(64, 64, 40 + i, Some((32.0, 20.0 + 10.0 * i as f32, 7.0, 7.0)));
        save(&format!("beta/test/hole/00{i}.png"), &img);
        match i {
            0 => save_mask("beta/ground_truth/hole/000_mask.png", &mask),
            1 => {} // 001 has no mask
            _ => save_mask("beta/ground_truth/hole/002_mask.png", &image::imageops::thumbnail(&mask, 40, 40)),
        }
    }
    std::fs::write(root.join("beta/test/hole/003.png"), b"\x89PNG\r\n\x1a\nthis is not a png").unwrap();
    save_mask("beta/ground_truth/hole/003_mask.png", &image::GrayImage::new(64, 64));
}

/// `(canonical image path → (score, map, image width, image height))` from every cache entry.
fn cached_results(cache: &Path) -> HashMap<PathBuf, (f32, Vec<f32>, u32, u32)> {
    let mut out = HashMap::new();
    for dir in std::fs::read_dir(cache).unwrap() {
        for e in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            let p = e.unwrap().path();
            let (key, r) = decode_entry(&std::fs::read(&p).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            assert_eq!(r.size, S);
            out.insert(PathBuf::from(key.lines().next().unwrap()), (r.score, r.map, r.image_width, r.image_height));
        }
    }
    out
}

fn value(m: &Value) -> Option<f64> {
    m.get("value").and_then(Value::as_f64)
}

#[track_caller]
fn assert_metric(json: &Value, want: Metric, what: &str) {
    match want {
        Metric::Value(v) => {
            let got = value(json).unwrap_or_else(|| panic!("{what}: {json} has no value, want {v}"));
            assert!((got - v).abs() <= 1e-12, "{what}: report {got}, recomputed {v}");
        }
        Metric::Undefined(r) => {
            let reason = serde_json::to_value(r).unwrap();
            assert_eq!(json["undefined"], reason, "{what}");
        }
    }
}

/// Recomputes alpha's and beta's metrics from the cached maps and the masks read back.
fn check_numbers(report: &Value, data: &Path, cache: &Path) {
    let cached = cached_results(cache);
    let classes = report["classes"].as_array().unwrap();
    let mut image_aurocs = Vec::new();
    for class in classes {
        let name = class["class"].as_str().unwrap();
        let (mut scores, mut labels, mut maps, mut masks) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for rec in report["images"].as_array().unwrap().iter().filter(|r| r["class"] == name) {
            let path = data.join(rec["image"].as_str().unwrap()).canonicalize().unwrap();
            let Some((score, map, w, h)) = cached.get(&path) else {
                assert_eq!(rec["mask"], "not_evaluated", "{rec}");
                continue;
            };
            assert_eq!(rec["score"].as_f64().unwrap() as f32, *score);
            scores.push(*score);
            let anomalous = rec["anomalous"].as_bool().unwrap();
            labels.push(anomalous);
            let mask = match rec["mask"].as_str().unwrap() {
                "normal" => vec![false; S * S],
                "mask" => {
                    let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
                    let defect = rec["defect"].as_str().unwrap();
                    let p = data.join(name).join("ground_truth").join(defect).join(format!("{stem}_mask.png"));
                    let m = read_mask(&p, S).unwrap();
                    assert_eq!((m.width, m.height), (*w, *h));
                    m.pixels
                }
                _ => continue,
            };
            maps.push(map.clone());
            masks.push(mask);
        }
        let image = image_metrics(&scores, &labels).unwrap();
        assert_metric(&class["image_auroc"], image.auroc, &format!("{name} image_auroc"));
        assert_metric(&class["image_ap"], image.average_precision, &format!("{name} image_ap"));
        assert_metric(&class["image_f1_max"], image.f1_max, &format!("{name} image_f1_max"));
        image_aurocs.push(image.auroc.value());
        if name == "gamma" {
            continue;
        }
        let images: Vec<PixelImage> =
            maps.iter().zip(&masks).map(|(m, k)| PixelImage { map: m, mask: k, height: S, width: S }).collect();
        let pixel = pixel_metrics_exact(&images).unwrap();
        assert_metric(&class["pixel_auroc"], pixel.auroc, &format!("{name} pixel_auroc"));
        assert_metric(&class["pixel_ap"], pixel.average_precision, &format!("{name} pixel_ap"));
        assert_metric(&class["pixel_f1_max"], pixel.f1_max, &format!("{name} pixel_f1_max"));
        assert_metric(&class["pixel_aupro_exact"], pixel.aupro, &format!("{name} aupro exact"));
        assert_metric(&class["pixel_aupro_sampled"], pixel.aupro_sampled, &format!("{name} aupro sampled"));
        assert_eq!(class["pixel_images"].as_u64().unwrap() as usize, images.len());
    }
    let defined: Vec<f64> = image_aurocs.into_iter().flatten().collect();
    let mean = defined.iter().sum::<f64>() / defined.len() as f64;
    assert!((value(&report["mean"]["image_auroc"]["value"]).unwrap() - mean).abs() < 1e-12);
    assert_eq!(report["mean"]["image_auroc"]["skipped"], 1, "gamma has no image AUROC");
}

fn read_json(p: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn entries(cache: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(cache)
        .unwrap()
        .flat_map(|d| std::fs::read_dir(d.unwrap().path()).unwrap().map(|e| e.unwrap().path()))
        .collect();
    v.sort();
    v
}

#[test]
fn eval_reports_metrics_of_cached_maps_skips_bad_input_and_resumes() {
    let dir = scratch("eval-e2e");
    let model = import_variant(&DetectFixture::load(), "v1", &dir, false);
    let data = dir.join("data");
    make_dataset(&data);
    let out = dir.join("report");
    let eval = || {
        let o = tokenclip(&[
            &"--backend",
            &"cpu",
            &"eval",
            &"--model",
            &model,
            &"--data",
            &data,
            &"--out",
            &out,
            &"--plots",
        ]);
        (o.status.code(), text(&o.stdout), text(&o.stderr))
    };
    let (code, stdout, stderr) = eval();
    assert_eq!(code, Some(2), "something was skipped: exit 2\n{stderr}");
    // What the reader found comes first, then the skips naming their files.
    assert!(stderr.starts_with("MVTec AD layout in "), "{stderr}");
    assert!(stderr.contains("3 classes, 16 images (9 normal, 7 anomalous), 6 masks"), "{stderr}");
    assert!(stderr.contains("skipped beta/test/hole/003.png: ") && stderr.contains("cannot decode"), "{stderr}");
    assert!(stderr.contains("beta/test/hole/001.png: no mask (left out of the pixel metrics)"), "{stderr}");
    assert!(stderr.contains("002_mask.png is 40x40 but its image is 64x64"), "{stderr}");
    assert!(stderr.contains("class gamma: no anomalous images"), "{stderr}");
    assert!(stderr.contains("cached: 0, computed: 15, recomputed: 0), failed: 1"), "{stderr}");

    // The table: header, one row per class, the mean row, footnotes.
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("class") && lines[0].contains("I-AUROC") && lines[0].ends_with("P-AUPRO"), "{stdout}");
    for (i, name) in ["alpha", "beta", "gamma", "mean"].iter().enumerate() {
        assert!(lines[i + 1].starts_with(name), "{stdout}");
    }
    assert!(lines[3].contains("n/a¹") && lines[4].split_whitespace().nth(2).unwrap().ends_with('*'), "{stdout}");
    assert!(stdout.contains("¹ no anomalous samples"), "{stdout}");
    assert!(stdout.contains("* mean over the classes where the metric is defined (2 of 3 classes)"), "{stdout}");
    let percent = |s: &str| s.split_whitespace().nth(2).unwrap().to_string();
    assert!(percent(lines[1]).contains('.') && percent(lines[1]).split('.').nth(1).unwrap().len() == 1, "{stdout}");

    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    for needle in [
        "| class | images | I-AUROC |",
        "| alpha | 6 |",
        "| **mean** | 15 |",
        "## Skipped",
        "## Dataset problems",
        "## Overall (all classes pooled)",
    ] {
        assert!(md.contains(needle), "report.md lacks {needle:?}:\n{md}");
    }
    let csv = std::fs::read_to_string(out.join("report.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert!(rows[0].starts_with("class,images,normal,anomalous,skipped_images,image_auroc,"), "{csv}");
    assert_eq!(rows.len(), 5, "{csv}");
    assert!(rows[2].starts_with("beta,6,3,3,1,") && rows[4].starts_with("mean,15,9,6,1,"), "{csv}");
    assert!(rows[3].contains("image_auroc: no anomalous samples"), "{csv}");

    let json = read_json(&out.join("report.json"));
    assert_eq!((json["format"].as_str(), json["input_size"].as_u64()), (Some("tokenclip-eval"), Some(S as u64)));
    assert_eq!((json["layout"].as_str(), json["aupro_mode"].as_str()), (Some("mvtec"), Some("sampled")));
    let names: Vec<&str> = json["classes"].as_array().unwrap().iter().map(|c| c["class"].as_str().unwrap()).collect();
    assert_eq!(names, ["alpha", "beta", "gamma"]);
    let beta = &json["classes"][1];
    assert_eq!(
        (beta["images"].as_u64(), beta["skipped_images"].as_u64(), beta["pixel_images"].as_u64()),
        (Some(6), Some(1), Some(4))
    );
    assert_eq!(json["classes"][2]["pixel_auroc"]["undefined"], "no_anomalous");
    assert_eq!(beta["pixel_aupro"], beta["pixel_aupro_sampled"]);
    let scopes: Vec<(String, String)> = json["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["scope"].as_str().unwrap().to_string(),
                s["path"].as_str().unwrap_or(s["class"].as_str().unwrap()).to_string(),
            )
        })
        .collect();
    for want in [
        ("image", "beta/test/hole/003.png"),
        ("pixels", "beta/test/hole/001.png"),
        ("pixels", "beta/test/hole/002.png"),
        ("class", "gamma"),
    ] {
        assert!(scopes.contains(&(want.0.to_string(), want.1.to_string())), "{want:?} not in {scopes:?}");
    }
    assert!(json["overall"]["image_auroc"]["value"].is_number(), "pooled metrics with --plots");
    let overall = &json["overall"];
    let counts = ["images", "skipped_images", "pixel_images"].map(|k| overall[k].as_u64().unwrap());
    assert_eq!(counts, [15, 1, 13], "every class pooled");
    check_numbers(&json, &data, &out.join("cache"));

    let mut plots: Vec<String> = std::fs::read_dir(out.join("plots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    plots.sort();
    assert_eq!(plots.len(), 8, "{plots:?}");
    assert!(
        plots.contains(&"class_alpha_roc.png".to_string()) && plots.contains(&"overall_pr.png".to_string()),
        "{plots:?}"
    );
    let png = image::open(out.join("plots/class_beta_roc.png")).unwrap();
    assert_eq!((png.width(), png.height()), (560, 500));

    // A rerun detects nothing and writes the same report.
    let first = std::fs::read(out.join("report.json")).unwrap();
    let (code, _, stderr) = eval();
    assert_eq!(code, Some(2));
    assert!(stderr.contains("cached: 15, computed: 0, recomputed: 0"), "{stderr}");
    assert_eq!(std::fs::read(out.join("report.json")).unwrap(), first, "a cached rerun reports the same bytes");

    // Damaged entries are recomputed, never trusted.
    let cache = out.join("cache");
    let all = entries(&cache);
    assert_eq!(all.len(), 15);
    let mut flipped = std::fs::read(&all[0]).unwrap();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x40;
    std::fs::write(&all[0], &flipped).unwrap();
    let cut = std::fs::read(&all[1]).unwrap();
    std::fs::write(&all[1], &cut[..cut.len() / 3]).unwrap();
    // As if the run had been interrupted before this image: only it is detected again.
    std::fs::remove_file(&all[2]).unwrap();
    let (code, _, stderr) = eval();
    assert_eq!(code, Some(2));
    assert!(stderr.contains("checksum mismatch: recomputing"), "{stderr}");
    assert!(stderr.contains("cached: 12, computed: 3, recomputed: 2"), "{stderr}");
    for e in &all[..3] {
        assert!(decode_entry(&std::fs::read(e).unwrap()).is_ok(), "{} was rewritten", e.display());
    }
    check_numbers(&read_json(&out.join("report.json")), &data, &cache);
}

#[test]
fn eval_clean_subset_exits_0_and_layouts_agree() {
    let dir = scratch("eval-clean");
    let model = import_variant(&DetectFixture::load(), "v1", &dir, false);
    let data = dir.join("data");
    make_dataset(&data);
    let out = dir.join("mvtec");
    let run = tokenclip(&[
        &"--backend",
        &"cpu",
        &"eval",
        &"--model",
        &model,
        &"--data",
        &data,
        &"--out",
        &out,
        &"--classes",
        &"alpha",
        &"--aupro",
        &"exact",
        &"--no-cache",
    ]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    assert!(!out.join("cache").exists(), "--no-cache writes no cache");
    let json = read_json(&out.join("report.json"));
    assert_eq!(json["aupro_mode"], "exact");
    assert_eq!(json["classes"].as_array().unwrap().len(), 1);
    assert_eq!(json["classes"][0]["pixel_aupro"], json["classes"][0]["pixel_aupro_exact"]);
    assert!(json["skipped"].as_array().unwrap().is_empty() && json["dataset_problems"].as_array().unwrap().is_empty());
    assert!(json["overall"].is_null(), "no pooled metrics without --plots");

    // The same images in the folder layout give the same numbers.
    let folder = dir.join("folder/alpha");
    for (from, to) in [("test/good", "good"), ("test/scratch", "scratch"), ("ground_truth/scratch", "scratch")] {
        std::fs::create_dir_all(folder.join(to)).unwrap();
        for e in std::fs::read_dir(data.join("alpha").join(from)).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(&p, folder.join(to).join(p.file_name().unwrap())).unwrap();
        }
    }
    let out2 = dir.join("folder-report");
    let run = tokenclip(&[
        &"--backend",
        &"cpu",
        &"eval",
        &"--model",
        &model,
        &"--data",
        &dir.join("folder"),
        &"--out",
        &out2,
        &"--aupro",
        &"exact",
    ]);
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    assert!(text(&run.stderr).starts_with("folder layout in "), "{}", text(&run.stderr));
    let json2 = read_json(&out2.join("report.json"));
    assert_eq!(json2["layout"], "folder");
    for key in ["class", "image_auroc", "image_ap", "pixel_auroc", "pixel_aupro_exact", "pixel_images"] {
        assert_eq!(json2["classes"][0][key], json["classes"][0][key], "{key}");
    }

    // Fatal errors: exit 1 with a message naming the problem.
    let run = tokenclip(&[&"eval", &"--model", &model, &"--data", &data, &"--out", &out, &"--classes", &"nope"]);
    assert_eq!(run.status.code(), Some(1));
    assert!(
        text(&run.stderr).contains("no class `nope` in the dataset (classes: alpha, beta, gamma)"),
        "{}",
        text(&run.stderr)
    );
    let run = tokenclip(&[&"eval", &"--model", &model, &"--data", &dir.join("mvtec"), &"--out", &out]);
    assert_eq!(run.status.code(), Some(1));
    assert!(text(&run.stderr).contains("no known dataset layout"), "{}", text(&run.stderr));
}

#[test]
fn eval_on_the_gpu_agrees_with_the_cpu() {
    if common::gpu("eval_on_the_gpu_agrees_with_the_cpu").is_none() {
        return;
    }
    let dir = scratch("eval-gpu");
    let model = import_variant(&DetectFixture::load(), "v1", &dir, false);
    let data = dir.join("data");
    make_dataset(&data);
    let mut reports = Vec::new();
    for backend in ["cpu", "gpu"] {
        let out = dir.join(backend);
        let run = tokenclip(&[
            &"--backend",
            &backend,
            &"eval",
            &"--model",
            &model,
            &"--data",
            &data,
            &"--out",
            &out,
            &"--classes",
            &"alpha,beta",
            &"--no-cache",
        ]);
        assert_eq!(run.status.code(), Some(2), "{}", text(&run.stderr));
        reports.push(read_json(&out.join("report.json")));
    }
    assert!(reports[1]["backend"].as_str().unwrap().starts_with("gpu"), "{}", reports[1]["backend"]);
    // Maps agree to ~1e-6; metrics may move only where that reorders near-equal pixels.
    for (c, g) in reports[0]["classes"].as_array().unwrap().iter().zip(reports[1]["classes"].as_array().unwrap()) {
        for key in ["image_auroc", "image_ap", "pixel_auroc", "pixel_ap", "pixel_aupro_exact", "pixel_aupro_sampled"] {
            let (a, b) = (value(&c[key]).unwrap(), value(&g[key]).unwrap());
            assert!((a - b).abs() <= 1e-3, "{} {key}: cpu {a}, gpu {b}", c["class"]);
        }
    }
}
