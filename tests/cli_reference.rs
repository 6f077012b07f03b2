//! `tokenclip reference` and `detect --reference` end to end on the tiny model: the memory is
//! written into a new model file that `info` describes, a one-off memory gives the same results
//! as the stored one, and bad references are named, skipped or refused.

mod common;

use std::path::Path;

use common::cli::{images, run, stderr, tiny_model, tiny_model_with};
use common::clip::scratch;

fn scores(out: &Path) -> Vec<f64> {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("scores.json")).unwrap()).unwrap();
    v["images"].as_array().unwrap().iter().map(|r| r["score"].as_f64().unwrap()).collect()
}

fn detect(model: &Path, out: &Path, input: &Path, extra: &[&dyn AsRef<std::ffi::OsStr>]) -> std::process::Output {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
        vec![&"--backend", &"cpu", &"detect", &"--model", &model, &"--save-maps", &"--out", &out];
    args.extend_from_slice(extra);
    args.push(&input);
    run(&args, &[])
}

#[test]
fn reference_writes_a_memory_that_info_shows_and_detect_uses() {
    let dir = scratch("cli_reference");
    let model = tiny_model(&dir);
    let good = dir.join("good");
    images(&good, 3);
    std::fs::write(good.join("broken.png"), b"not a png").unwrap();
    let test = dir.join("test");
    images(&test, 4);
    let with = dir.join("with-memory.safetensors");
    let o = run(&[&"--backend", &"cpu", &"reference", &"--model", &model, &"--normal", &good, &"--out", &with], &[]);
    let err = stderr(&o);
    assert!(o.status.success(), "reference: {err}");
    assert!(err.contains("broken.png") && err.contains("k = 3 normal images (1 skipped)"), "{err}");

    let o = run(&[&"--backend", &"cpu", &"info", &"--model", &with], &[]);
    let info = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(o.status.success() && info.contains("few-shot memory: k = 3 normal images"), "{info}");
    assert!(info.contains("layers [1, 2, 3, 4]"), "the default: each quarter's last layer: {info}");

    let (zero, stored, once) = (dir.join("zero"), dir.join("stored"), dir.join("once"));
    assert!(detect(&model, &zero, &test, &[]).status.success());
    let o = detect(&with, &stored, &test, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = detect(&model, &once, &test, &[&"--reference", &good]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (z, s, w) = (scores(&zero), scores(&stored), scores(&once));
    assert_ne!(z, s, "the memory changes the scores");
    assert_eq!(s, w, "a one-off memory scores as the stored one");
    let map = |d: &Path| std::fs::read(d.join("img0001.map.npy")).unwrap();
    assert_eq!(map(&stored), map(&once));
    assert_ne!(map(&zero), map(&stored));

    // A single reference works; --no-image-score keeps the zero-shot image score.
    let one = dir.join("one.safetensors");
    let first = good.join("img0000.png");
    let o = run(
        &[
            &"--backend",
            &"cpu",
            &"reference",
            &"--model",
            &model,
            &"--normal",
            &first,
            &"--no-image-score",
            &"--out",
            &one,
        ],
        &[],
    );
    assert!(o.status.success() && stderr(&o).contains("k = 1 normal images"), "{}", stderr(&o));
    let only = dir.join("only");
    assert!(detect(&one, &only, &test, &[]).status.success());
    assert_eq!(scores(&only), z, "without the image score option the image scores stay zero-shot");
}

#[test]
fn bad_references_are_refused_without_output() {
    let dir = scratch("cli_reference_bad");
    let model = tiny_model(&dir);
    let good = dir.join("good");
    images(&good, 1);
    let out = dir.join("m.safetensors");
    let refuse = |args: &[&dyn AsRef<std::ffi::OsStr>], want: &str| {
        let o = run(args, &[]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains(want), "wanted `{want}` in: {err}");
        assert!(!out.exists(), "a refused run wrote {}", out.display());
    };
    let with = |extra: &[&str]| {
        let mut v: Vec<String> = ["--backend", "cpu", "reference", "--model"].map(String::from).to_vec();
        v.extend([model.display().to_string(), "--out".into(), out.display().to_string(), "--normal".into()]);
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let refuse = |args: Vec<String>, want: &str| {
        let args: Vec<&dyn AsRef<std::ffi::OsStr>> = args.iter().map(|a| a as &dyn AsRef<std::ffi::OsStr>).collect();
        refuse(&args, want)
    };
    let (good, broken_dir, missing) =
        (good.display().to_string(), dir.join("broken"), dir.join("missing").display().to_string());
    refuse(with(&[&good, "--layers", "2,9"]), "few-shot layer 9 is outside the vision tower's layers 1–4");
    refuse(with(&[&good, "--weight=-1"]), "few-shot weight -1 must be finite");
    std::fs::create_dir_all(&broken_dir).unwrap();
    std::fs::write(broken_dir.join("a.png"), b"not a png").unwrap();
    refuse(with(&[&broken_dir.display().to_string()]), "none of the 1 reference images could be read");
    refuse(with(&[&missing]), "no input images found");
    let o = run(&[&"--backend", &"cpu", &"reference", &"--model", &model, &"--out", &model, &"--normal", &good], &[]);
    assert!(!o.status.success() && stderr(&o).contains("is the model being read"), "{}", stderr(&o));
}

#[test]
fn an_f16_model_stores_its_memory_in_f16_and_detects_as_the_one_off_memory() {
    let dir = scratch("cli_reference_f16");
    let model = tiny_model_with(&dir, "f16", &["--dtype", "f16"]);
    let (good, test) = (dir.join("good"), dir.join("test"));
    images(&good, 2);
    images(&test, 3);
    let with = dir.join("with.safetensors");
    let o = run(&[&"--backend", &"cpu", &"reference", &"--model", &model, &"--normal", &good, &"--out", &with], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let file = tokenclip::clip::model_file::ModelFile::open(&with).unwrap();
    let bytes = std::fs::read(&with).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(file.config.few_shot.as_ref().unwrap().layers, [1, 2, 3, 4]);
    let memory = st.tensor("few_shot.memory.2").unwrap();
    assert_eq!(memory.dtype(), safetensors::Dtype::F16);
    assert_eq!(memory.shape(), [64, 2 * 64]);

    // The stored f16 memory against the one-off f32 one: f16 rounding of unit vectors (≤ 4.9e-4
    // per element) moves cosines by at most ~1e-3.
    let (stored, once) = (dir.join("stored"), dir.join("once"));
    assert!(detect(&with, &stored, &test, &[]).status.success());
    assert!(detect(&model, &once, &test, &[&"--reference", &good]).status.success());
    for (a, b) in scores(&stored).iter().zip(scores(&once)) {
        assert!((a - b).abs() < 2e-3, "f16 memory score {a}, f32 memory {b}");
    }
    // On the GPU (lavapipe here) the stored memory gives the CPU's result.
    if common::gpu("f16 memory on the gpu").is_some() {
        let gpu = dir.join("gpu");
        let o = run(&[&"--backend", &"gpu", &"detect", &"--model", &with, &"--save-maps", &"--out", &gpu, &test], &[]);
        assert!(o.status.success(), "{}", stderr(&o));
        for (a, b) in scores(&gpu).iter().zip(scores(&stored)) {
            assert!((a - b).abs() < 1e-4, "GPU {a}, CPU {b}");
        }
    }
}

#[test]
fn memory_options_without_a_memory_are_refused_not_ignored() {
    let dir = scratch("memory_options_alone");
    let img = &images(&dir.join("in"), 1)[0];
    let out = dir.join("out");
    for (extra, named) in [
        (vec!["--weight", "2"], "--weight"),
        (vec!["--layers", "1"], "--layers"),
        (vec!["--no-image-score"], "--no-image-score"),
    ] {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
            vec![&"detect", &"--model", &"unused.safetensors", &"--out", &out];
        for e in &extra {
            args.push(e);
        }
        args.push(img);
        let o = run(&args, &[]);
        assert_eq!(o.status.code(), Some(1), "detect {extra:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(named) && stderr(&o).contains("without --reference"), "{}", stderr(&o));
    }
    assert!(!out.exists(), "nothing is written");
    let o = run(&[&"eval", &"--data", &dir, &"--weight", &"0.5", &"--out", &out], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("without --shots K"), "{}", stderr(&o));
}
