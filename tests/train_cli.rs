//! `tokenclip train` end to end on a synthetic MVTec-layout dataset made here (textured images
//! with drawn defects and masks) and the tiny fixture CLIP at S = 64, CPU backend:
//! - a short run lowers the training loss by a stated margin, and its model file detects;
//! - the same seed gives bit-identical prompts; stopping and `--resume` gives the same prompts as
//!   an uninterrupted run; Ctrl-C (SIGINT) leaves a usable checkpoint;
//! - bad input: a base model without a text tower, a dataset without masks (image labels only,
//!   said so), a damaged feature-cache entry (recomputed, not trusted).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::clip::scratch;
use common::dataset::textured;
use common::detect::tiny_clip;
use tokenclip::clip::model_file::{ModelFile, PROMPT_CTX_ABNORMAL, PROMPT_CTX_NORMAL, PROMPT_DEEP};

fn tokenclip(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tokenclip"))
        .args(args.iter().map(|a| a.as_ref()))
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// One class `widget`: 4 good and 4 `dent` images (64×64) with masks; `masks: false` leaves the
/// ground truth out.
fn make_dataset(root: &Path, masks: bool) {
    for i in 0..4u32 {
        let good = root.join(format!("widget/test/good/00{i}.png"));
        std::fs::create_dir_all(good.parent().unwrap()).unwrap();
        textured(64, 64, i, None).0.save(&good).unwrap();
        let (img, mask) = textured(64, 64, 10 + i, Some((16.0 + 10.0 * i as f32, 30.0, 8.0, 6.0)));
        let bad = root.join(format!("widget/test/dent/00{i}.png"));
        std::fs::create_dir_all(bad.parent().unwrap()).unwrap();
        img.save(&bad).unwrap();
        if masks {
            let m = root.join(format!("widget/ground_truth/dent/00{i}_mask.png"));
            std::fs::create_dir_all(m.parent().unwrap()).unwrap();
            mask.save(&m).unwrap();
        }
    }
}

/// The tiny CLIP imported without prompts at S = 64 (`--vision-only` optional).
fn base(dir: &Path, vision_only: bool) -> PathBuf {
    let out = dir.join(format!("base-{vision_only}.safetensors"));
    let clip = tiny_clip(dir);
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
        vec![&"import", &"--clip", &clip, &"--image-size", &"64", &"--dpam-start", &"1", &"--out", &out];
    if vision_only {
        args.push(&"--vision-only");
    }
    let run = tokenclip(&args);
    assert!(run.status.success(), "{}", stderr(&run));
    out
}

fn train(base: &Path, data: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
        &"--backend",
        &"cpu",
        &"train",
        &"--model",
        &base,
        &"--data",
        &data,
        &"--out",
        &out,
        &"--batch",
        &"4",
        &"--subspaces",
        &"2",
        &"--seed",
        &"5",
    ];
    if !extra.contains(&"--lr") {
        args.extend([&"--lr" as &dyn AsRef<std::ffi::OsStr>, &"0.01"]);
    }
    args.extend(extra.iter().map(|e| e as &dyn AsRef<std::ffi::OsStr>));
    tokenclip(&args)
}

fn prompts(model: &Path) -> Vec<Vec<f32>> {
    let f = ModelFile::open(model).unwrap();
    [PROMPT_CTX_NORMAL, PROMPT_CTX_ABNORMAL, PROMPT_DEEP].iter().map(|n| f.read_f32(n).unwrap()).collect()
}

/// Mean loss per epoch from the JSON-lines log.
fn epoch_losses(out: &Path) -> Vec<f64> {
    let log = std::fs::read_to_string(format!("{}.log.jsonl", out.display())).unwrap();
    let mut sums: Vec<(f64, usize)> = Vec::new();
    for line in log.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let e = v["epoch"].as_u64().unwrap() as usize;
        if sums.len() < e {
            sums.resize(e, (0.0, 0));
        }
        sums[e - 1].0 += v["loss"].as_f64().unwrap();
        sums[e - 1].1 += 1;
    }
    sums.iter().map(|(s, n)| s / *n as f64).collect()
}

#[test]
fn training_lowers_the_loss_is_deterministic_and_detects() {
    let dir = scratch("train-run");
    make_dataset(&dir.join("data"), true);
    let base = base(&dir, false);
    let (a, b) = (dir.join("a.safetensors"), dir.join("b.safetensors"));
    let run = train(&base, &dir.join("data"), &a, &["--epochs", "8"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let losses = epoch_losses(&a);
    eprintln!("mean loss per epoch: {losses:?}");
    assert_eq!(losses.len(), 8);
    // Stated margin: the last epoch's mean loss is at most 90 % of the first's.
    assert!(losses[7] <= 0.9 * losses[0], "loss did not fall enough: {losses:?}");
    let info = tokenclip(&[&"info", &"--model", &a]);
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(info.status.success() && text.contains("M = 2 subspaces") && text.contains("train: epoch 8"), "{text}");

    let run = train(&base, &dir.join("data"), &b, &["--epochs", "8"]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(
        stderr(&run).contains("(16 from the cache)") || stderr(&run).contains("from the cache"),
        "{}",
        stderr(&run)
    );
    let (pa, pb) = (prompts(&a), prompts(&b));
    for (x, y) in pa.iter().zip(&pb) {
        assert!(x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits()), "same seed, different prompts");
    }
    let out = dir.join("detect");
    let img = dir.join("data/widget/test/dent/000.png");
    let run = tokenclip(&[&"--backend", &"cpu", &"detect", &"--model", &a, &"--out", &out, &img]);
    assert!(run.status.success(), "{}", stderr(&run));
}

#[test]
fn resume_continues_exactly_and_ctrl_c_leaves_a_checkpoint() {
    let dir = scratch("train-resume");
    make_dataset(&dir.join("data"), true);
    let base = base(&dir, false);
    let data = dir.join("data");
    let (straight, resumed) = (dir.join("straight.safetensors"), dir.join("resumed.safetensors"));
    assert!(train(&base, &data, &straight, &["--epochs", "3"]).status.success());
    assert!(train(&base, &data, &resumed, &["--epochs", "1"]).status.success());
    let run = train(&base, &data, &resumed, &["--resume", "--epochs", "3"]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(stderr(&run).contains("resuming at epoch 2"), "{}", stderr(&run));
    assert_eq!(prompts(&straight), prompts(&resumed), "resumed run differs from the straight one");

    // Ctrl-C: SIGINT while training; the checkpoint it writes is a valid model and state.
    let out = dir.join("interrupted.safetensors");
    let child = Command::new(env!("CARGO_BIN_EXE_tokenclip"))
        .args(["--backend", "cpu", "train", "--batch", "2", "--epochs", "10000", "--model"])
        .arg(&base)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let log = PathBuf::from(format!("{}.log.jsonl", out.display()));
    let start = std::time::Instant::now();
    while std::fs::read_to_string(&log).map_or(0, |l| l.lines().count()) < 3 {
        assert!(start.elapsed().as_secs() < 120, "training never started");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let done = child.wait_with_output().unwrap();
    let err = stderr(&done);
    assert!(!done.status.success() && err.contains("interrupted"), "{err}");
    ModelFile::open(&out).expect("the interrupted run's model file is valid");
    let run = train(&base, &data, &out, &["--resume", "--epochs", "1"]);
    assert!(run.status.success(), "{}", stderr(&run));
}

#[test]
fn bad_inputs_are_explained() {
    let dir = scratch("train-bad");
    make_dataset(&dir.join("data"), false);
    let vision_only = base(&dir, true);
    let run = train(&vision_only, &dir.join("data"), &dir.join("x.safetensors"), &["--epochs", "1"]);
    assert!(!run.status.success() && stderr(&run).contains("no text tower"), "{}", stderr(&run));
    assert!(!dir.join("x.safetensors").exists());

    let base = base(&dir, false);
    let out = dir.join("labels-only.safetensors");
    let run = train(&base, &dir.join("data"), &out, &["--epochs", "1"]);
    let err = stderr(&run);
    assert!(run.status.success() && err.contains("image labels only"), "{err}");

    // Damage every cached feature entry: the next run recomputes them instead of trusting them.
    let cache = PathBuf::from(format!("{}.cache", out.display()));
    let mut damaged = 0;
    for e in std::fs::read_dir(&cache).unwrap() {
        let p = e.unwrap().path();
        let mut bytes = std::fs::read(&p).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        std::fs::write(&p, bytes).unwrap();
        damaged += 1;
    }
    assert_eq!(damaged, 8);
    let run = train(&base, &dir.join("data"), &out, &["--epochs", "1"]);
    let err = stderr(&run);
    assert!(run.status.success() && err.contains("(0 from the cache)"), "{err}");

    // A run that diverges (an infinite learning rate) stops with a message and never replaces the
    // last good model file.
    let good = std::fs::read(&out).unwrap();
    let run = train(&base, &dir.join("data"), &out, &["--epochs", "3", "--lr", "inf"]);
    let err = stderr(&run);
    assert!(!run.status.success() && err.contains("diverged"), "{err}");
    assert!(std::fs::read(&out).unwrap() == good, "the last good checkpoint was overwritten");
}
