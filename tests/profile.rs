//! The per-op profile (`tokenclip::backend::profile`, `bench --profile`): a profiled pass gives
//! the same results as a plain one on both backends, and its records name every op family and
//! every vision layer the pass ran.

mod common;

use common::cli::{run, stderr, tiny_model};
use common::clip::scratch;
use tokenclip::backend::profile::{totals, Profiled};
use tokenclip::backend::Backend;
use tokenclip::clip::model_file::ModelFile;
use tokenclip::Detector;

fn check<B: Backend>(be: &B, file: &ModelFile) {
    let size = file.config.input_size;
    let pixels = common::random(3 * size * size, 7, -1.5, 1.5);
    let plain = Detector::load(file, &file.config, be).unwrap();
    let want = pollster::block_on(plain.detect(be, &pixels)).unwrap();

    let profiled = Profiled::new(be);
    let det = Detector::load(file, &file.config, &profiled).unwrap();
    profiled.take();
    let start = std::time::Instant::now();
    let got = pollster::block_on(det.detect(&profiled, &pixels)).unwrap();
    let wall = start.elapsed().as_secs_f64();
    assert_eq!(got.score.to_bits(), want.score.to_bits());
    assert_eq!(got.map, want.map, "the profiled pass runs the same ops");

    let times = profiled.take();
    let families = totals(&times, |t| t.family.to_string());
    for f in ["matmul", "attention", "norm", "elementwise", "patch_embed", "transport", "score", "blur", "transfer"] {
        assert!(families.contains_key(f), "no {f} op recorded: {families:?}");
    }
    assert!(!families.contains_key("other"), "an op without a family: {families:?}");
    let layers = file.config.clip.vision.layers;
    let scopes = totals(&times, |t| t.scope.clone());
    for l in 1..=layers {
        let (_, n) = scopes[&format!("vision layer {l}")];
        assert!(n >= 8, "layer {l}: {n} ops (ln, qkv, attention, out, ln, fc, gelu, proj at least)");
    }
    for part in ["vision embed", "vision taps", "transport", "post-processing"] {
        assert!(scopes.contains_key(part), "{part} missing: {scopes:?}");
    }
    let sum: f64 = times.iter().map(|t| t.seconds).sum();
    assert!(times.iter().all(|t| t.seconds >= 0.0) && sum <= wall, "op times {sum} s within the wall {wall} s");
}

#[test]
fn profiled_pass_equals_the_plain_one_and_names_every_family_and_layer() {
    let dir = scratch("profile");
    let file = ModelFile::open(&tiny_model(&dir)).unwrap();
    check(&common::cpu(), &file);
    if let Some(gpu) = common::gpu("profile::gpu") {
        check(gpu, &file);
    }
}

#[test]
fn gpu_timestamps_time_every_kernel_of_an_unchanged_pass() {
    let Some(gpu) = common::gpu("profile::gpu_timestamps") else { return };
    if !gpu.has_kernel_timestamps() {
        eprintln!("SKIPPED profile::gpu_timestamps: the adapter offers no timestamp queries");
        return;
    }
    let dir = scratch("profile_timestamps");
    let file = ModelFile::open(&tiny_model(&dir)).unwrap();
    let size = file.config.input_size;
    let pixels = common::random(3 * size * size, 9, -1.5, 1.5);
    let det = Detector::load(&file, &file.config, gpu).unwrap();
    let want = pollster::block_on(det.detect(gpu, &pixels)).unwrap();
    gpu.time_kernels(true).unwrap();
    let start = std::time::Instant::now();
    let got = pollster::block_on(det.detect(gpu, &pixels)).unwrap();
    let wall = start.elapsed().as_secs_f64();
    let times = gpu.take_kernel_times();
    gpu.time_kernels(false).unwrap();
    assert_eq!(got.map, want.map, "timing does not change the pass");
    let families = totals(&times, |t| t.family.to_string());
    for f in ["matmul", "attention", "norm", "elementwise", "patch_embed", "transport", "score", "blur"] {
        assert!(families.contains_key(f), "no {f} kernel timed: {families:?}");
    }
    let scopes = totals(&times, |t| t.scope.clone());
    for l in 1..=file.config.clip.vision.layers {
        assert!(scopes.contains_key(&format!("vision layer {l}")), "layer {l} missing: {scopes:?}");
    }
    let sum: f64 = times.iter().map(|t| t.seconds).sum();
    assert!(sum > 0.0 && sum <= wall, "kernel times {sum} s within the wall {wall} s");
    // Off again: nothing more is recorded.
    pollster::block_on(det.detect(gpu, &pixels)).unwrap();
    assert!(gpu.take_kernel_times().is_empty());
}

#[test]
fn bench_profile_prints_families_and_layers_and_is_refused_elsewhere() {
    let dir = scratch("bench_profile");
    let model = tiny_model(&dir);
    let o = run(&[&"--backend", &"cpu", &"bench", &"--model", &model, &"--reps", &"1", &"--profile"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    for want in ["op family", "matmul", "attention", "vision layer 1", "vision layer 4", "post-processing"] {
        assert!(out.contains(want), "{want:?} missing from:\n{out}");
    }
    let o = run(&[&"--backend", &"cpu", &"bench", &"ops", &"--profile"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--profile goes with `bench --model M`"), "{}", stderr(&o));
}
