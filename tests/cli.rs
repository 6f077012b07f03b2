//! The `tokenclip` binary end to end: `info` with and without a GPU adapter, `bench ops`, `import`
//! and `info --model`.

use std::process::Command;

fn tokenclip(args: &[&str], hide_gpus: bool) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokenclip"));
    cmd.args(args).env("XDG_RUNTIME_DIR", std::env::temp_dir());
    if hide_gpus {
        // Only the Vulkan backend, and a loader that finds no driver: a machine with no adapter.
        cmd.env("WGPU_BACKEND", "vulkan")
            .env("VK_ICD_FILENAMES", "/nonexistent/icd.json")
            .env("VK_DRIVER_FILES", "/nonexistent/icd.json");
    }
    let out = cmd.output().expect("run tokenclip");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn info_without_any_adapter_says_cpu_plainly() {
    let (ok, out) = tokenclip(&["info"], true);
    assert!(ok, "info must succeed without a GPU:\n{out}");
    assert!(out.contains("GPU adapters (0)"), "{out}");
    assert!(out.contains("chosen: cpu (no usable GPU"), "{out}");
}

#[test]
fn gpu_backend_without_adapter_fails_with_a_message() {
    let (ok, out) = tokenclip(&["--backend", "gpu", "info"], true);
    assert!(!ok, "--backend gpu without an adapter must fail:\n{out}");
    assert!(out.contains("error: no GPU adapter found"), "{out}");
}

#[test]
fn info_lists_limits_of_the_chosen_adapter() {
    // `--backend gpu`: `auto` passes over software adapters (lavapipe in CI) for the CPU.
    let (ok, out) = tokenclip(&["--backend", "gpu", "info"], false);
    assert!(ok, "{out}");
    if out.contains("chosen: gpu") {
        assert!(out.contains("max_storage_buffer_binding_size"), "{out}");
        assert!(out.contains("shader-f16"), "{out}");
    } else {
        assert!(
            std::env::var("TOKENCLIP_REQUIRE_GPU").map_or(true, |v| v != "1"),
            "no GPU chosen although required:\n{out}"
        );
    }
}

#[test]
fn bench_ops_prints_gflops_per_op() {
    let (ok, out) = tokenclip(
        &["--backend", "cpu", "bench", "ops", "--shapes", "small", "--reps", "1", "--filter", "matmul 256"],
        false,
    );
    assert!(ok, "{out}");
    assert!(out.contains("GFLOP/s") && out.contains("matmul 256x256x256"), "{out}");
}

#[test]
fn unknown_backend_is_refused() {
    let (ok, out) = tokenclip(&["--backend", "tpu", "info"], false);
    assert!(!ok);
    assert!(out.contains("expected auto, gpu or cpu"), "{out}");
}

#[test]
fn import_then_info_describe_the_model() {
    let dir = std::env::temp_dir().join(format!("tokenclip-cli-import-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("tiny.safetensors");
    let gz = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clip_tiny_openclip.safetensors.gz");
    let mut r = flate2::read::GzDecoder::new(std::fs::File::open(gz).unwrap());
    std::io::copy(&mut r, &mut std::fs::File::create(&src).unwrap()).unwrap();
    // The open_clip config the hub ships beside the weights: it tells the activation.
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    std::fs::copy(fixtures.join("clip_tiny_openclip.open_clip_config.json"), dir.join("open_clip_config.json"))
        .unwrap();
    let model = dir.join("model.safetensors");
    let (s, m) = (src.to_str().unwrap(), model.to_str().unwrap());
    let (ok, out) = tokenclip(&["import", "--clip", s, "--out", m, "--dtype", "f16", "--image-size", "64"], false);
    assert!(ok, "{out}");
    assert!(
        out.contains("vision: width 128, 4 layers, 2 heads, patch 8, native 32 px, quick_gelu; embedding 64"),
        "{out}"
    );
    let (ok, out) = tokenclip(&["--backend", "cpu", "info", "--model", m], false);
    assert!(ok, "{out}");
    assert!(out.contains("text: width 128, 2 layers, 2 heads, context 77, quick_gelu"), "{out}");
    assert!(out.contains("weights F16, input 64 px, DPAM from layer 1, feature layers [4]"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
