//! `tokenclip embed` end to end: the real image files decoded and preprocessed by us, the texts
//! tokenized by us, compared with open_clip's `encode_image(preprocess(img))` and
//! `encode_text(tokenize(texts))` from tools/make_clip_fixtures.py.

mod common;

use std::process::Command;

use common::clip::{assert_rel_l2, gunzip, import, scratch, shared_data, Expected};
use tokenclip::clip::config::WeightDType;
use tokenclip::clip::safetensors::SafetensorsFile;

fn embed(backend: &str) {
    let exp = Expected::load();
    let data = shared_data();
    let dir = scratch(&format!("embed-{backend}"));
    let model = import(&gunzip("clip_tiny_openclip.safetensors.gz", &dir), &dir, WeightDType::F32, false);
    let out = dir.join("embeds.safetensors");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tokenclip"));
    cmd.args(["--backend", backend, "embed", "--model"]).arg(&model).arg("--out").arg(&out);
    for img in &exp.images {
        cmd.arg("--image").arg(data.join(img));
    }
    for t in &exp.texts {
        cmd.arg("--text").arg(t);
    }
    let run = cmd.env("XDG_RUNTIME_DIR", std::env::temp_dir()).output().unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let f = SafetensorsFile::open(&out).unwrap();
    let images = f.read_f32("image_embeds").unwrap();
    let texts = f.read_f32("text_embeds").unwrap();
    assert_eq!(f.header.tensors["image_embeds"].shape, [exp.images.len(), 64]);
    assert_eq!(f.header.tensors["text_embeds"].shape, [exp.texts.len(), 64]);
    for (i, name) in exp.images.iter().enumerate() {
        let got = &images[i * 64..(i + 1) * 64];
        let want = exp.row("main.image_embeds", i);
        // PNG and JPEG decode as PIL does and preprocessing matches PIL bit for bit.
        assert_rel_l2(&format!("{backend}: {name}"), got, want, 1e-4);
    }
    for (i, t) in exp.texts.iter().enumerate() {
        assert_rel_l2(
            &format!("{backend}: text {t:?}"),
            &texts[i * 64..(i + 1) * 64],
            exp.row("main.text_embeds", i),
            1e-4,
        );
    }
}

#[test]
fn embed_matches_open_clip_cpu() {
    embed("cpu");
}

#[test]
fn embed_matches_open_clip_gpu() {
    if common::gpu("embed_matches_open_clip_gpu").is_some() {
        embed("gpu");
    }
}

/// Runs `tokenclip --backend cpu embed ARGS --out OUT` and expects a failure whose stderr contains
/// `want`, with no output file left.
fn embed_fails(args: &[&std::ffi::OsStr], out: &std::path::Path, want: &str) {
    let run = Command::new(env!("CARGO_BIN_EXE_tokenclip"))
        .args(["--backend", "cpu", "embed"])
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success() && err.contains(want), "{err}");
    assert!(!out.exists());
}

#[test]
fn embed_refuses_texts_without_a_text_tower() {
    let dir = scratch("embed-vision-only");
    let model = import(&gunzip("clip_tiny_openclip.safetensors.gz", &dir), &dir, WeightDType::F16, true);
    let args = ["--text".as_ref(), "a photo".as_ref(), "--model".as_ref(), model.as_os_str()];
    embed_fails(&args, &dir.join("e.safetensors"), "no text tower");
}

#[test]
fn embed_reports_unreadable_images_by_name() {
    let dir = scratch("embed-bad-image");
    let model = import(&gunzip("clip_tiny_openclip.safetensors.gz", &dir), &dir, WeightDType::F32, true);
    let bad = dir.join("not-an-image.png");
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\n truncated").unwrap();
    let args = ["--image".as_ref(), bad.as_os_str(), "--model".as_ref(), model.as_os_str()];
    embed_fails(&args, &dir.join("e.safetensors"), "not-an-image.png");
}
