//! CLIP encoders against the independent reference: tiny random-weight checkpoints in the three
//! input formats (tools/make_clip_fixtures.py: open_clip 3.3 and transformers on PyTorch), imported
//! through the real importer and run on both backends. Tolerances (issue 3): relative L2 error
//! ≤ 1e-4 with f32 weights, ≤ 5e-3 with f16 weights; element-wise rel/abs 1e-4 with f32 weights.

mod common;

use common::clip::{assert_rel_l2, gunzip, import, scratch, Expected};
use common::{assert_close32, read, Tol};
use tokenclip::backend::Backend;
use tokenclip::clip::config::WeightDType;
use tokenclip::clip::model::ClipModel;
use tokenclip::clip::model_file::ModelFile;

const F32_TOL: f64 = 1e-4;
const F16_TOL: f64 = 5e-3;

/// Encodes every fixture image and text with `model` and compares with `{prefix}.{image,text}_embeds`.
fn check_embeddings<B: Backend>(be: &B, model: &std::path::Path, prefix: &str, tol: f64, what: &str) {
    let exp = Expected::load();
    let file = ModelFile::open(model).unwrap();
    let clip = ClipModel::load(&file, &file.config, be).unwrap();
    let size = clip.vision.config().image_size;
    for i in 0..exp.images.len() {
        let (pixels, _) = exp.get(&format!("pixels.{i}"));
        let e = clip.vision.encode_image(be, &be.upload(pixels, &[3, size, size]).unwrap()).unwrap();
        let got = read(be, &e);
        let want = exp.row(&format!("{prefix}.image_embeds"), i);
        assert_rel_l2(&format!("{what}: image {} ({})", i, exp.images[i]), &got, want, tol);
        if tol <= F32_TOL {
            assert_close32(&format!("{what}: image {i}"), &got, want, Tol::MATMUL);
        }
    }
    let text = clip.text.as_ref().expect("text tower");
    for (i, ids) in exp.tokens.iter().enumerate() {
        let got = read(be, &text.encode_tokens(be, ids).unwrap());
        let want = exp.row(&format!("{prefix}.text_embeds"), i);
        assert_rel_l2(&format!("{what}: text {i} {:?}", exp.texts[i]), &got, want, tol);
        if tol <= F32_TOL {
            assert_close32(&format!("{what}: text {i}"), &got, want, Tol::MATMUL);
        }
    }
}

/// The vision tower's intermediates for image 0, so a failure names the first block that differs.
fn check_vision_intermediates<B: Backend>(be: &B, model: &std::path::Path) {
    let exp = Expected::load();
    let file = ModelFile::open(model).unwrap();
    let clip = ClipModel::load(&file, &file.config, be).unwrap();
    let (pixels, _) = exp.get("pixels.0");
    let mut x = clip.vision.embed(be, &be.upload(pixels, &[3, 32, 32]).unwrap()).unwrap();
    assert_close32("after ln_pre", &read(be, &x), &exp.get("main.vision.embed").0, Tol::MATMUL);
    for (j, block) in clip.vision.blocks.iter().enumerate() {
        x = block.forward(be, &x, tokenclip::backend::AttentionMask::None).unwrap();
        assert_close32(&format!("block {j}"), &read(be, &x), &exp.get(&format!("main.vision.block{j}")).0, Tol::MATMUL);
    }
}

fn open_clip_safetensors_f32<B: Backend>(be: &B) {
    let dir = scratch("oc-f32");
    let model = import(&gunzip("clip_tiny_openclip.safetensors.gz", &dir), &dir, WeightDType::F32, false);
    check_vision_intermediates(be, &model);
    check_embeddings(be, &model, "main", F32_TOL, "open_clip safetensors, f32");
}
on_both_backends!(open_clip_safetensors_f32, super::open_clip_safetensors_f32);

fn open_clip_safetensors_f16<B: Backend>(be: &B) {
    let dir = scratch("oc-f16");
    let model = import(&gunzip("clip_tiny_openclip.safetensors.gz", &dir), &dir, WeightDType::F16, false);
    check_embeddings(be, &model, "main", F16_TOL, "open_clip safetensors, f16");
}
on_both_backends!(open_clip_safetensors_f16, super::open_clip_safetensors_f16);

fn openai_torchscript<B: Backend>(be: &B) {
    let dir = scratch("pt");
    let model = import(&gunzip("clip_tiny_openai.pt.gz", &dir), &dir, WeightDType::F32, false);
    // The .pt stores f16 like OpenAI's files; the reference ran on those same rounded weights.
    check_embeddings(be, &model, "tiny2.f16", F32_TOL, "OpenAI TorchScript .pt");
}
on_both_backends!(openai_torchscript, super::openai_torchscript);

fn hugging_face<B: Backend>(be: &B) {
    let dir = scratch("hf");
    let src = gunzip("clip_tiny_hf/model.safetensors.gz", &dir);
    let f32_model = import(&src, &dir, WeightDType::F32, false);
    check_embeddings(be, &f32_model, "tiny2.f32", F32_TOL, "Hugging Face CLIPModel, f32");
    // Rounding the f32 weights to f16 at import: the real f16 error against the f32 reference.
    let f16_model = import(&src, &dir, WeightDType::F16, false);
    check_embeddings(be, &f16_model, "tiny2.f32", F16_TOL, "Hugging Face CLIPModel, f16");
}
on_both_backends!(hugging_face, super::hugging_face);

/// A 48 px input (6×6 grid against the checkpoint's 4×4): the positional embedding is resized
/// bilinearly as AnomalyCLIP does (METHOD.md A1).
fn another_input_size<B: Backend>(be: &B) {
    let exp = Expected::load();
    let dir = scratch("size48");
    let model = import(&gunzip("clip_tiny_openclip.safetensors.gz", &dir), &dir, WeightDType::F32, true);
    let file = ModelFile::open(&model).unwrap();
    let clip = ClipModel::load(&file, &file.config, be).unwrap();
    for i in 0..exp.images.len() {
        let (pixels, _) = exp.get(&format!("pixels48.{i}"));
        let got = read(be, &clip.vision.encode_image(be, &be.upload(pixels, &[3, 48, 48]).unwrap()).unwrap());
        let want = exp.row("main.image_embeds_48", i);
        assert_rel_l2(&format!("48 px image {i}"), &got, want, F32_TOL);
        assert_close32(&format!("48 px image {i}"), &got, want, Tol::MATMUL);
    }
}
on_both_backends!(another_input_size, super::another_input_size);
