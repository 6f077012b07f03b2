//! Killed runs lose nothing (issue 16): `detect` on a folder, `eval`, `train` and a model
//! download are each killed with SIGKILL at several points, then run again; the final outputs
//! equal an uninterrupted run's bit for bit (these runs are deterministic; only train's timing
//! field differs), and no temporary or half-written file is left.

#![cfg(unix)]

mod common;

#[path = "hub/env.rs"]
#[allow(dead_code)] // the hub tests use the rest
mod env;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cli::{assert_no_temp_files, command, images, run, stderr, tiny_model, walk};
use common::clip::scratch;
use common::dataset::textured;

/// Starts `cmd`, waits until `ready()` holds, kills it with SIGKILL; true if it was killed
/// (false if it finished first, which the callers count so that no test passes without kills).
fn kill_when(mut cmd: Command, ready: impl Fn() -> bool) -> bool {
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let start = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if ready() {
            child.kill().unwrap(); // SIGKILL
            let status = child.wait().unwrap();
            return status.code().is_none();
        }
        assert!(start.elapsed() < Duration::from_secs(120), "the run never reached its kill point");
        std::thread::sleep(Duration::from_micros(300));
    }
}

/// Names under `dir` (relative) that end with `suffix`.
fn count(dir: &Path, suffix: &str) -> usize {
    if !dir.exists() {
        return 0;
    }
    walk(dir).iter().filter(|p| p.to_string_lossy().ends_with(suffix)).count()
}

/// Any temporary file under `dir` right now.
fn has_temp(dir: &Path) -> bool {
    dir.exists() && walk(dir).iter().any(|p| p.file_name().unwrap().to_string_lossy().contains(".tmp-"))
}

/// Every file under `a` equals the one at the same place under `b`, and no file is missing.
fn assert_same_tree(a: &Path, b: &Path, skip: &[&str]) {
    let rel = |root: &Path| -> Vec<PathBuf> {
        walk(root)
            .into_iter()
            .map(|p| p.strip_prefix(root).unwrap().to_path_buf())
            .filter(|p| !skip.iter().any(|s| p.to_string_lossy().contains(s)))
            .collect()
    };
    let (ra, rb) = (rel(a), rel(b));
    assert_eq!(ra, rb, "different files in {} and {}", a.display(), b.display());
    for p in ra {
        assert!(std::fs::read(a.join(&p)).unwrap() == std::fs::read(b.join(&p)).unwrap(), "{} differs", p.display());
    }
}

#[test]
fn detect_killed_then_rerun_writes_what_an_unbroken_run_writes() {
    let dir = scratch("kill-detect");
    let model = tiny_model(&dir);
    let input = dir.join("in");
    images(&input, 24);
    let args = |out: &Path| -> Vec<std::ffi::OsString> {
        ["--backend", "cpu", "detect", "--save-maps", "--model"]
            .iter()
            .map(Into::into)
            .chain([model.clone().into(), "--out".into(), out.into(), input.clone().into()])
            .collect()
    };
    let detect = |out: &Path| {
        let a = args(out);
        let refs: Vec<&dyn AsRef<std::ffi::OsStr>> = a.iter().map(|s| s as _).collect();
        (run(&refs, &[]), command(&refs, &[]))
    };
    let want = dir.join("unbroken");
    let (o, _) = detect(&want);
    assert!(o.status.success(), "{}", stderr(&o));
    let (mut kills, mut with_temp) = (0, 0);
    // Kill points: while the model loads, after 1 and after 15 overlays, and while a file is
    // being written (a temporary file exists).
    for (i, point) in ["load", "1", "15", "temp", "temp"].iter().enumerate() {
        let out = dir.join(format!("killed-{i}"));
        let (_, cmd) = detect(&out);
        let killed = match *point {
            "load" => kill_when(cmd, || true),
            "temp" => kill_when(cmd, || has_temp(&out)),
            n => {
                let n: usize = n.parse().unwrap();
                kill_when(cmd, || count(&out, ".overlay.png") >= n)
            }
        };
        kills += usize::from(killed);
        with_temp += usize::from(killed && has_temp(&out));
        let (o, _) = detect(&out);
        assert!(o.status.success(), "rerun after kill at {point}: {}", stderr(&o));
        assert_no_temp_files(&out);
        assert_same_tree(&want, &out, &[]);
    }
    assert!(kills >= 4, "only {kills} of 5 runs were killed before they finished");
    eprintln!("detect: {kills} kills, {with_temp} left a temporary file that the rerun swept");
    let _ = std::fs::remove_dir_all(&dir);
}

/// An MVTec AD-layout class with masks: 6 good, 6 defective images.
fn dataset(root: &Path) {
    let save = |rel: &str, img: &dyn Fn(&Path)| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        img(&p);
    };
    for i in 0..6u32 {
        save(&format!("widget/test/good/{i:03}.png"), &|p| textured(64, 64, i, None).0.save(p).unwrap());
        let (img, mask) = textured(64, 64, 10 + i, Some((16.0 + 6.0 * i as f32, 30.0, 8.0, 6.0)));
        save(&format!("widget/test/dent/{i:03}.png"), &|p| img.save(p).unwrap());
        save(&format!("widget/ground_truth/dent/{i:03}_mask.png"), &|p| mask.save(p).unwrap());
    }
}

#[test]
fn eval_killed_then_rerun_reports_what_an_unbroken_run_reports() {
    let dir = scratch("kill-eval");
    let model = tiny_model(&dir);
    let data = dir.join("data");
    dataset(&data);
    let eval = |out: &Path| {
        let a: [&dyn AsRef<std::ffi::OsStr>; 9] =
            [&"--backend", &"cpu", &"eval", &"--model", &model, &"--data", &data, &"--out", &out];
        (run(&a, &[]), command(&a, &[]))
    };
    let want = dir.join("unbroken");
    let (o, _) = eval(&want);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut kills = 0;
    for (i, entries) in [0usize, 3, 9].iter().enumerate() {
        let out = dir.join(format!("killed-{i}"));
        let (_, cmd) = eval(&out);
        kills += usize::from(kill_when(cmd, || count(&out.join("cache"), ".tcr") >= *entries));
        let (o, _) = eval(&out);
        assert!(o.status.success(), "rerun after {entries} cache entries: {}", stderr(&o));
        assert_no_temp_files(&out);
        assert_same_tree(&want, &out, &[]);
    }
    assert!(kills >= 2, "only {kills} of 3 runs were killed before they finished");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The step log without its timing field.
fn log_without_seconds(out: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(format!("{}.log.jsonl", out.display())).unwrap();
    text.lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("seconds");
            v
        })
        .collect()
}

#[test]
fn train_killed_then_rerun_or_resumed_ends_with_the_same_prompts() {
    let dir = scratch("kill-train");
    let data = dir.join("data");
    dataset(&data);
    let base = dir.join("base.safetensors");
    let clip = common::detect::tiny_clip(&dir);
    let o = run(&[&"import", &"--clip", &clip, &"--image-size", &"64", &"--dpam-start", &"1", &"--out", &base], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let train = |out: &Path, resume: bool| {
        let mut a: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
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
            &"--lr",
            &"0.01",
            &"--epochs",
            &"3",
        ];
        if resume {
            a.push(&"--resume");
        }
        (run(&a, &[]), command(&a, &[]))
    };
    let want_dir = dir.join("unbroken");
    std::fs::create_dir_all(&want_dir).unwrap();
    let want = want_dir.join("p.safetensors");
    let (o, _) = train(&want, false);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut kills = 0;
    // Kill points by logged steps (3 batches per epoch): mid-epoch 1 (no checkpoint yet: rerun
    // the same command), just after the first checkpoint and mid-epoch 3 (rerun with --resume).
    for (i, (steps, resume)) in [(1usize, false), (3, true), (7, true), (7, false)].iter().enumerate() {
        let out_dir = dir.join(format!("killed-{i}"));
        std::fs::create_dir_all(&out_dir).unwrap();
        let out = out_dir.join("p.safetensors");
        let log = PathBuf::from(format!("{}.log.jsonl", out.display()));
        let (_, cmd) = train(&out, false);
        kills +=
            usize::from(kill_when(cmd, || std::fs::read_to_string(&log).is_ok_and(|l| l.lines().count() >= *steps)));
        let resume = *resume && out_dir.join("p.safetensors.state.safetensors").exists();
        let (o, _) = train(&out, resume);
        assert!(o.status.success(), "rerun after {steps} steps (resume: {resume}): {}", stderr(&o));
        assert_no_temp_files(&out_dir);
        assert_eq!(std::fs::read(&want).unwrap(), std::fs::read(&out).unwrap(), "prompts after a kill at {steps}");
        assert_eq!(log_without_seconds(&want), log_without_seconds(&out), "log after a kill at {steps}");
        assert_same_tree(&want_dir, &out_dir, &[".log.jsonl"]);
    }
    assert!(kills >= 3, "only {kills} of 4 runs were killed before they finished");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn download_killed_then_rerun_fetches_the_same_bytes() {
    let dir = scratch("kill-fetch");
    let e = env::HubEnv::new(&dir);
    let blob = e.hf_home.join("hub/models--test--tiny-clip/blobs").join(&e.clip_sha);
    // The CDN sends 64 KiB every 40 ms: the tiny CLIP (2 MB) can be killed mid-file.
    e.hub.cdn.faults.slow_ms.store(40, std::sync::atomic::Ordering::SeqCst);
    let partial_bytes = || {
        walk_if(&e.hf_home)
            .iter()
            .filter(|p| p.to_string_lossy().ends_with(".incomplete"))
            .map(|p| p.metadata().map_or(0, |m| m.len()))
            .max()
            .unwrap_or(0)
    };
    let mut kills = 0;
    for at in [1u64, 200 << 10, 600 << 10] {
        kills += usize::from(kill_when(fetch(&e), || partial_bytes() >= at));
    }
    e.hub.cdn.faults.slow_ms.store(0, std::sync::atomic::Ordering::SeqCst);
    let o = e.run(&["fetch", "tiny"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(kills >= 2, "only {kills} of 3 downloads were killed before they finished");
    assert_eq!(std::fs::read(&blob).unwrap(), *e.clip_bytes, "the resumed download differs");
    env::assert_no_partials(&e.hf_home);
    env::assert_no_partials(&e.cache);
    assert_no_temp_files(&e.hf_home);
    assert_no_temp_files(&e.cache);
    let _ = std::fs::remove_dir_all(&dir);
}

fn fetch(e: &env::HubEnv) -> Command {
    let mut c = e.command();
    c.args(["fetch", "tiny"]);
    c
}

fn walk_if(dir: &Path) -> Vec<PathBuf> {
    if dir.exists() {
        walk(dir)
    } else {
        Vec::new()
    }
}
