//! `detect --shard` / `eval --shard` and `tokenclip merge` end to end (docs/SHARDING.md), on the
//! tiny model (S = 64, CPU backend) and a few images:
//! - detect in 3 separately started processes (sharing one out folder, and in 3 folders) + merge
//!   = one detect run: scores.csv, scores.json, overlays and maps byte for byte, failed inputs
//!   included; a shard run again writes the same bytes;
//! - eval in 2 shards + merge = one eval run: report.md, report.json, report.csv and plots byte
//!   for byte (nothing in them differs legitimately between the runs: no times, and the same
//!   model, data folder and backend, so nothing is normalised), zero-shot with skips and
//!   few-shot;
//! - `JOB_COMPLETION_INDEX` + `TOKENCLIP_SHARDS` and Slurm's variables give the shard `--shard`
//!   gives, and `--shard` wins over them;
//! - bad input: index out of range, N = 0, a malformed `--shard`, an index without a total,
//!   overlapping, missing and mixed shards, a changed dataset: a clear message, a non-zero exit,
//!   and no merged file written.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::cli::{assert_no_temp_files, command, images, stderr, tiny_model, tiny_model_with, walk};
use common::clip::scratch;
use common::dataset::textured;

/// The variables that pick a shard; cleared for every run so the test's own environment (a CI
/// job array, say) cannot leak in.
const SHARD_VARS: [&str; 4] =
    ["JOB_COMPLETION_INDEX", "SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "TOKENCLIP_SHARDS"];

fn cmd(args: &[&dyn AsRef<std::ffi::OsStr>], env: &[(&str, &str)]) -> std::process::Command {
    let mut c = command(&[&"--backend", &"cpu"], &[]);
    for v in SHARD_VARS {
        c.env_remove(v);
    }
    c.args(args.iter().map(|a| a.as_ref()));
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

fn tc(args: &[&dyn AsRef<std::ffi::OsStr>], env: &[(&str, &str)]) -> Output {
    cmd(args, env).output().unwrap()
}

#[track_caller]
fn assert_code(o: &Output, code: i32, what: &str) {
    assert_eq!(o.status.code(), Some(code), "{what}: {}", stderr(o));
}

#[track_caller]
fn assert_refused(o: &Output, what: &str, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{what} must fail with exit 1: {err}");
    assert!(err.contains(needle), "{what}: expected `{needle}` in: {err}");
}

fn read(p: &Path) -> Vec<u8> {
    std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every file under `dir` outside `shards/` and `cache/`, relative, with its bytes.
fn outputs(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    walk(dir)
        .into_iter()
        .map(|p| p.strip_prefix(dir).unwrap().to_path_buf())
        .filter(|r| !r.starts_with("shards") && !r.starts_with("cache"))
        .map(|r| (r.clone(), read(&dir.join(&r))))
        .collect()
}

#[track_caller]
fn assert_same_outputs(got: &Path, want: &Path) {
    let (g, w) = (outputs(got), outputs(want));
    let names = |v: &[(PathBuf, Vec<u8>)]| v.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
    assert_eq!(names(&g), names(&w), "{} vs {}", got.display(), want.display());
    for ((p, a), (_, b)) in g.iter().zip(&w) {
        assert!(a == b, "{} differs from the single run's", p.display());
    }
}

/// 7 images in `in/` and `in/sub/`, and a corrupt one: 8 inputs, one failing.
fn detect_inputs(dir: &Path) -> PathBuf {
    let input = dir.join("in");
    images(&input, 5);
    images(&input.join("sub"), 2);
    std::fs::write(input.join("broken.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
    input
}

fn detect(model: &Path, input: &Path, out: &Path, extra: &[&str], env: &[(&str, &str)]) -> std::process::Command {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
        vec![&"detect", &"--model", &model, &"--out", &out, &"--threshold", &"0.5", &"--save-maps"];
    for e in extra {
        args.push(e);
    }
    args.push(&input);
    cmd(&args, env)
}

#[test]
fn detect_shards_merge_to_the_single_run_byte_for_byte() {
    let dir = scratch("shard-detect");
    let model = tiny_model(&dir);
    let input = detect_inputs(&dir);
    let single = dir.join("single");
    assert_code(&detect(&model, &input, &single, &[], &[]).output().unwrap(), 2, "single run with a broken input");

    // Three processes at once into one out folder.
    let shared = dir.join("shared");
    let children: Vec<_> = (0..3)
        .map(|i| {
            let mut c = detect(&model, &input, &shared, &["--shard", &format!("{i}/3")], &[]);
            c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
        })
        .collect();
    let codes: Vec<Option<i32>> = children.into_iter().map(|c| c.wait_with_output().unwrap().status.code()).collect();
    assert_eq!(codes.iter().filter(|c| **c == Some(2)).count(), 1, "the broken input fails one shard: {codes:?}");
    assert!(codes.iter().all(|c| matches!(c, Some(0 | 2))), "{codes:?}");
    assert!(!shared.join("scores.csv").exists(), "a shard writes no scores.csv");
    let shard1 = shared.join("shards/scores.1-of-3.json");
    let first = read(&shard1);
    assert_code(&tc(&[&"merge", &"--out", &shared], &[]), 2, "merge reports the failed input as the single run");
    assert_same_outputs(&shared, &single);
    assert_no_temp_files(&shared);

    // A shard run again writes the same bytes, and the merge is the same.
    let o = detect(&model, &input, &shared, &["--shard", "1/3"], &[]).output().unwrap();
    assert!(matches!(o.status.code(), Some(0 | 2)), "{}", stderr(&o));
    assert_eq!(read(&shard1), first, "rerun of a shard");
    assert_code(&tc(&[&"merge", &"--out", &shared, &shared], &[]), 2, "merge again");
    assert_same_outputs(&shared, &single);

    // One folder per shard: merge copies their overlays and maps in.
    let parts: Vec<PathBuf> = (0..3).map(|i| dir.join(format!("part{i}"))).collect();
    for (i, p) in parts.iter().enumerate() {
        let o = detect(&model, &input, p, &["--shard", &format!("{i}/3")], &[]).output().unwrap();
        assert!(matches!(o.status.code(), Some(0 | 2)), "{}", stderr(&o));
    }
    let merged = dir.join("merged");
    let o = tc(&[&"merge", &"--out", &merged, &parts[2], &parts[0].join("shards/scores.0-of-3.json"), &parts[1]], &[]);
    assert_code(&o, 2, "merge of three folders");
    assert_same_outputs(&merged, &single);
}

#[test]
fn env_indices_give_the_flags_shard_and_the_flag_wins() {
    let dir = scratch("shard-env");
    let model = tiny_model(&dir);
    let input = dir.join("in");
    images(&input, 3);
    let run = |name: &str, extra: &[&str], env: &[(&str, &str)]| {
        let out = dir.join(name);
        let o = detect(&model, &input, &out, extra, env).output().unwrap();
        assert_code(&o, 0, name);
        out
    };
    let want = read(&run("flag", &["--shard", "1/3"], &[]).join("shards/scores.1-of-3.json"));
    let k8s = run("k8s", &[], &[("JOB_COMPLETION_INDEX", "1"), ("TOKENCLIP_SHARDS", "3")]);
    assert_eq!(read(&k8s.join("shards/scores.1-of-3.json")), want, "JOB_COMPLETION_INDEX + TOKENCLIP_SHARDS");
    let slurm = run("slurm", &["--shards", "3"], &[("SLURM_ARRAY_TASK_ID", "2"), ("SLURM_ARRAY_TASK_MIN", "1")]);
    assert_eq!(read(&slurm.join("shards/scores.1-of-3.json")), want, "Slurm array 1-3, task 2");
    let wins = run("wins", &["--shard", "0/3"], &[("JOB_COMPLETION_INDEX", "2"), ("TOKENCLIP_SHARDS", "3")]);
    let files: Vec<PathBuf> = walk(&wins.join("shards"));
    assert_eq!(files, [wins.join("shards/scores.0-of-3.json")], "--shard wins over the environment");
}

#[test]
fn bad_shards_are_refused_naming_the_problem() {
    let dir = scratch("shard-bad");
    let model = tiny_model(&dir);
    let input = dir.join("in");
    images(&input, 3);
    let out = dir.join("out");
    let bad = |extra: &[&str], env: &[(&str, &str)]| detect(&model, &input, &out, extra, env).output().unwrap();
    assert_refused(&bad(&["--shard", "4/4"], &[]), "--shard 4/4", "shard index 4 is out of range for 4 shards");
    assert_refused(&bad(&["--shard", "0/0"], &[]), "--shard 0/0", "must be at least 1");
    assert_refused(&bad(&["--shard", "1-4"], &[]), "--shard 1-4", "expected I/N");
    assert_refused(&bad(&["--shard", "x/4"], &[]), "--shard x/4", "expected I/N");
    assert_refused(&bad(&[], &[("JOB_COMPLETION_INDEX", "1")]), "index without total", "JOB_COMPLETION_INDEX is set");
    assert_refused(&bad(&["--shards", "3"], &[]), "total without index", "not which one this is");
    assert_refused(
        &bad(&[], &[("TOKENCLIP_SHARDS", "3"), ("JOB_COMPLETION_INDEX", "3")]),
        "env out of range",
        "out of range",
    );
    assert!(!out.exists(), "nothing written for refused shards");

    // Shards to mix: two runs of 3, one of 2, one with another model, one with other inputs.
    let shard = |name: &str, spec: &str, m: &Path, inp: &Path| {
        let o = dir.join(name);
        assert_code(&detect(m, inp, &o, &["--shard", spec], &[]).output().unwrap(), 0, name);
        o.join("shards").join(format!("scores.{}.json", spec.replace('/', "-of-")))
    };
    let (a0, a1) = (shard("a", "0/3", &model, &input), shard("a", "1/3", &model, &input));
    let b0 = shard("b", "0/3", &model, &input);
    let two = shard("two", "1/2", &model, &input);
    let other_model = tiny_model_with(&dir, "f16", &["--dpam-start", "1", "--feature-layers", "4", "--dtype", "f16"]);
    let m2 = shard("m2", "2/3", &other_model, &input);
    let more = dir.join("more");
    images(&more, 4);
    let i2 = shard("i2", "2/3", &model, &more);
    let merged = dir.join("merged");
    let merge = |files: &[&PathBuf]| {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![&"merge", &"--out", &merged];
        args.extend(files.iter().map(|f| *f as &dyn AsRef<std::ffi::OsStr>));
        tc(&args, &[])
    };
    assert_refused(&merge(&[&a0, &a1]), "missing", "missing shards of 3: 2 (0-based");
    assert_refused(&merge(&[&a0, &a1, &b0]), "overlap", "shard 0 of 3 is given twice");
    assert_refused(&merge(&[&a0, &two]), "mixed N", "is shard 1 of 2: shards of different runs cannot be merged");
    assert_refused(&merge(&[&a0, &a1, &m2]), "other model", "their fingerprints differ in `model`");
    assert_refused(&merge(&[&a0, &a1, &i2]), "other inputs", "their fingerprints differ in `inputs`");
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    assert_refused(&merge(&[&empty]), "no shards", "no shard files found");
    assert!(!merged.exists(), "nothing written by refused merges");
}

/// `alpha`: 3 good, 3 `scratch` with masks; `beta`: 2 good, a `hole` with a mask, one without,
/// and an unreadable image; both with 2 training normals (for `--shots`).
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
        save(&format!("alpha/test/good/00{i}.png"), &textured(72, 64, i, None).0);
        let (img, mask) = textured(72, 64, 10 + i, Some((20.0 + 12.0 * i as f32, 30.0, 9.0, 6.0)));
        save(&format!("alpha/test/scratch/00{i}.png"), &img);
        save_mask(&format!("alpha/ground_truth/scratch/00{i}_mask.png"), &mask);
    }
    for i in 0..2u32 {
        save(&format!("alpha/train/good/00{i}.png"), &textured(72, 64, 50 + i, None).0);
        save(&format!("beta/train/good/00{i}.png"), &textured(64, 64, 60 + i, None).0);
        save(&format!("beta/test/good/00{i}.png"), &textured(64, 64, 20 + i, None).0);
        let (img, mask) = textured(64, 64, 40 + i, Some((32.0, 20.0 + 10.0 * i as f32, 7.0, 7.0)));
        save(&format!("beta/test/hole/00{i}.png"), &img);
        if i == 0 {
            save_mask("beta/ground_truth/hole/000_mask.png", &mask);
        }
    }
    std::fs::write(root.join("beta/test/hole/002.png"), b"\x89PNG\r\n\x1a\nthis is not a png").unwrap();
}

fn eval(model: &Path, data: &Path, out: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
        vec![&"eval", &"--model", &model, &"--data", &data, &"--out", &out, &"--plots"];
    for e in extra {
        args.push(e);
    }
    tc(&args, env)
}

#[test]
fn eval_shards_merge_to_the_single_report_byte_for_byte() {
    let dir = scratch("shard-eval");
    let model = tiny_model(&dir);
    let data = dir.join("data");
    make_dataset(&data);
    for (name, extra) in [("zero", &[][..]), ("few", &["--shots", "1", "--seed", "4"][..])] {
        let single = dir.join(format!("{name}-single"));
        let so = eval(&model, &data, &single, extra, &[]);
        assert_code(&so, 2, "single eval with skips");
        let shared = dir.join(format!("{name}-shared"));
        let mut s0 = extra.to_vec();
        s0.extend(["--shard", "0/2"]);
        assert_code(&eval(&model, &data, &shared, &s0, &[]), 0, "shard 0 (alpha only, all readable)");
        let env = [("JOB_COMPLETION_INDEX", "1"), ("TOKENCLIP_SHARDS", "2")];
        assert_code(
            &eval(&model, &data, &shared, extra, &env),
            2,
            "shard 1 (from the environment) has the broken image",
        );
        assert!(!shared.join("report.json").exists(), "a shard writes no report");
        let merged = dir.join(format!("{name}-merged"));
        let mo = tc(&[&"merge", &"--out", &merged, &shared], &[]);
        assert_code(&mo, 2, "merge exits as the single run");
        assert_eq!(String::from_utf8_lossy(&mo.stdout), String::from_utf8_lossy(&so.stdout), "the printed table");
        assert!(merged.join("plots").is_dir(), "plots, as the shards ran with --plots");
        assert_same_outputs(&merged, &single);
        // A shard run again (every result cached now) writes the same bytes.
        let file = shared.join("shards/eval.0-of-2.tcshard");
        let before = read(&file);
        assert_code(&eval(&model, &data, &shared, &s0, &[]), 0, "shard 0 again");
        assert!(read(&file) == before, "rerun of an eval shard");
        if name == "few" {
            let r: serde_json::Value = serde_json::from_slice(&read(&merged.join("report.json"))).unwrap();
            assert_eq!(r["few_shot"]["shots"], 1, "{}", r["few_shot"]);
        }
    }
    // A damaged (cut short) shard file: refused, nothing written.
    let cut = dir.join("cut");
    std::fs::create_dir_all(&cut).unwrap();
    for i in 0..2 {
        let name = format!("eval.{i}-of-2.tcshard");
        let bytes = read(&dir.join("zero-shared/shards").join(&name));
        std::fs::write(cut.join(&name), &bytes[..bytes.len() - i * 100]).unwrap();
    }
    let o = tc(&[&"merge", &"--out", &cut.join("merged"), &cut], &[]);
    assert_refused(&o, "truncated shard", "eval.1-of-2.tcshard: truncated");
    assert!(!cut.join("merged").exists());
    // The dataset changed after the shards ran: refused, nothing written.
    save_extra(&data);
    let late = dir.join("late");
    assert_refused(&tc(&[&"merge", &"--out", &late, &dir.join("zero-shared")], &[]), "changed data", "is not the one");
    assert!(!late.exists());
}

fn save_extra(data: &Path) {
    textured(64, 64, 99, None).0.save(data.join("beta/test/good/009.png")).unwrap();
}
