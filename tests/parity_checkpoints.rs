//! Every kind of CLIP checkpoint a user is likely to hold, with both MLP activations, against the
//! independent references (tools/make_checkpoint_fixtures.py: open_clip and transformers on
//! PyTorch, random weights): open_clip `.safetensors` and `.bin` with `open_clip_config.json`
//! beside them, Hugging Face `CLIPModel` `model.safetensors` and `pytorch_model.bin` with
//! `config.json`, each imported without `--activation` (the sidecar says it), on both backends.
//! Tolerances as tests/parity_clip.rs: relative L2 ≤ 1e-4, element-wise rel/abs 1e-4. Exact GELU
//! and QuickGELU differ by 6.9e-3 (relative L2) on these weights, so a wrong activation fails.

mod common;

use common::clip::{assert_rel_l2, gunzip, scratch, Expected};
use common::{assert_close32, read, Tol};
use tokenclip::backend::Backend;
use tokenclip::clip::config::Activation;
use tokenclip::clip::import::{import_clip, ImportOptions};
use tokenclip::clip::model::ClipModel;
use tokenclip::clip::model_file::ModelFile;

const TOL: f64 = 1e-4;
const EXPECTED: &str = "checkpoints/expected.safetensors";

/// (fixture folder, checkpoint file, the activation its config names).
const CASES: [(&str, &str, Activation); 6] = [
    ("openclip_gelu", "open_clip_model.safetensors.gz", Activation::Gelu),
    ("openclip_gelu_bin", "open_clip_pytorch_model.bin.gz", Activation::Gelu),
    ("openclip_quick_bin", "open_clip_pytorch_model.bin.gz", Activation::QuickGelu),
    ("hf_gelu", "model.safetensors.gz", Activation::Gelu),
    ("hf_gelu_bin", "pytorch_model.bin.gz", Activation::Gelu),
    ("hf_quick_bin", "pytorch_model.bin.gz", Activation::QuickGelu),
];

/// Imports the checkpoint `file` of fixture folder `name` (its config beside it).
fn import_case(name: &str, file: &str, opts: &ImportOptions) -> std::path::PathBuf {
    let dir = scratch(&format!("ckpt-{name}"));
    let src = gunzip(&format!("checkpoints/{name}/{file}"), &dir);
    let out = dir.join("model.safetensors");
    import_clip(&src, &out, opts).unwrap_or_else(|e| panic!("import of {name} failed: {e}"));
    out
}

fn check<B: Backend>(be: &B, name: &str, model: &std::path::Path, act: Activation) {
    let exp = Expected::load_from(EXPECTED);
    let file = ModelFile::open(model).unwrap();
    assert_eq!(file.config.clip.vision.activation, act, "{name}: vision activation");
    assert_eq!(file.config.clip.text.as_ref().unwrap().activation, act, "{name}: text activation");
    let clip = ClipModel::load(&file, &file.config, be).unwrap();
    let size = clip.vision.config().image_size;
    for i in 0..exp.images.len() {
        let (pixels, _) = exp.get(&format!("pixels.{i}"));
        let got = read(be, &clip.vision.encode_image(be, &be.upload(pixels, &[3, size, size]).unwrap()).unwrap());
        let want = exp.row(&format!("{name}.image_embeds"), i);
        assert_rel_l2(&format!("{name}: image {i}"), &got, want, TOL);
        assert_close32(&format!("{name}: image {i}"), &got, want, Tol::MATMUL);
    }
    let text = clip.text.as_ref().unwrap();
    for (i, ids) in exp.tokens.iter().enumerate() {
        let got = read(be, &text.encode_tokens(be, ids).unwrap());
        let want = exp.row(&format!("{name}.text_embeds"), i);
        assert_rel_l2(&format!("{name}: text {i}"), &got, want, TOL);
        assert_close32(&format!("{name}: text {i}"), &got, want, Tol::MATMUL);
    }
}

fn every_checkpoint_kind_matches_its_reference<B: Backend>(be: &B) {
    for (name, file, act) in CASES {
        check(be, name, &import_case(name, file, &ImportOptions::default()), act);
    }
}
on_both_backends!(every_checkpoint_kind_matches_its_reference, super::every_checkpoint_kind_matches_its_reference);

/// Without its config, an open_clip checkpoint needs `--activation`; given, it is the same model.
#[test]
fn stated_activation_equals_the_configs() {
    let dir = scratch("ckpt-stated");
    let src = gunzip("checkpoints/openclip_gelu/open_clip_model.safetensors.gz", &dir);
    std::fs::remove_file(dir.join("open_clip_config.json")).unwrap();
    let out = dir.join("model.safetensors");
    let err = import_clip(&src, &out, &ImportOptions::default()).unwrap_err().to_string();
    assert!(err.contains("--activation gelu") && err.contains("open_clip_config.json"), "{err}");
    assert!(!out.exists());
    let mut opts = ImportOptions::default();
    opts.activation = Some(Activation::Gelu);
    import_clip(&src, &out, &opts).unwrap();
    check(&common::cpu(), "openclip_gelu", &out, Activation::Gelu);
}

#[test]
fn exact_gelu_matches_pytorch_on_both_backends() {
    let exp = Expected::load_from(EXPECTED);
    let (x, shape) = exp.get("gelu.x");
    let (want, _) = exp.get("gelu.y");
    let want: Vec<f64> = want.iter().map(|&v| f64::from(v)).collect();
    let c = common::cpu();
    let x2 = [x.as_slice(), &[0.0, -0.0, 1e-8, 30.0, -30.0]].concat();
    let exact: Vec<f64> = x2
        .iter()
        .map(|&v| 0.5 * f64::from(v) * (1.0 + libm::erf(f64::from(v) * std::f64::consts::FRAC_1_SQRT_2)))
        .collect();
    type Gelu = Box<dyn Fn(&[f32], &[usize]) -> Vec<f32>>;
    let mut backends: Vec<(&str, Gelu)> =
        vec![("cpu", Box::new(move |v: &[f32], s: &[usize]| read(&c, &c.gelu(&c.upload(v, s).unwrap()).unwrap())))];
    if let Some(g) = common::gpu("exact_gelu_matches_pytorch_on_both_backends") {
        backends
            .push(("gpu", Box::new(move |v: &[f32], s: &[usize]| read(g, &g.gelu(&g.upload(v, s).unwrap()).unwrap()))));
    }
    for (which, run) in &backends {
        common::assert_close(
            &format!("{which} gelu vs torch.nn.functional.gelu"),
            &run(x, shape),
            &want,
            Tol::ELEMENTWISE,
        );
        common::assert_close(
            &format!("{which} gelu vs exact erf (f64)"),
            &run(&x2, &[x2.len()]),
            &exact,
            Tol::ELEMENTWISE,
        );
    }
}
