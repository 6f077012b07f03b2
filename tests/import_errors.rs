//! Bad checkpoints and model files: each refused with an error naming the file and the problem,
//! and no output file (nor a temporary one) left behind.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::clip::{gunzip, import, scratch};
use tokenclip::clip::config::WeightDType;
use tokenclip::clip::import::{import_clip, ImportOptions};
use tokenclip::clip::model_file::ModelFile;
use tokenclip::clip::safetensors::{write_atomic, PlannedTensor, SafetensorsFile, StDType};
use tokenclip::ModelError;

/// Imports `src` into `dir/out.safetensors`, expecting failure; checks nothing was left in `dir`
/// but the inputs. Returns the error message.
fn import_fails(src: &Path, dir: &Path) -> (ModelError, String) {
    let before: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    let out = dir.join("out.safetensors");
    let err = match import_clip(src, &out, &ImportOptions::default()) {
        Err(tokenclip::Error::Model(e)) => e,
        other => panic!("import must fail with a model error, got {other:?}"),
    };
    let after: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(before.len(), after.len(), "files left behind: {after:?} (before {before:?})");
    assert!(!out.exists());
    let msg = err.to_string();
    assert!(msg.contains(&src.display().to_string()), "message must name the file: {msg}");
    (err, msg)
}

/// A tensor list being edited: name, dtype, shape, f32 data.
type Tensors = Vec<(String, StDType, Vec<usize>, Vec<f32>)>;
/// One edit applied to a tensor list.
type Edit = Box<dyn FnOnce(&mut Tensors)>;
/// A shape-corruption case: name, edit, expected message part.
type ShapeCase = (&'static str, fn(&mut Tensors), &'static str);

/// Rewrites safetensors `src` into `dst` with `edit` applied to the (name, dtype, shape, f32 data) list.
fn rewrite(src: &Path, dst: &Path, edit: impl FnOnce(&mut Tensors), meta: BTreeMap<String, String>) {
    let f = SafetensorsFile::open(src).unwrap();
    let mut tensors: Vec<_> =
        f.header.tensors.iter().map(|(n, e)| (n.clone(), e.dtype, e.shape.clone(), f.read_f32(n).unwrap())).collect();
    let meta = if meta.is_empty() { f.header.metadata.clone() } else { meta };
    edit(&mut tensors);
    let planned: Vec<_> =
        tensors.iter().map(|(n, d, s, _)| PlannedTensor { name: n.clone(), dtype: *d, shape: s.clone() }).collect();
    write_atomic(dst, &meta, &planned, |i| {
        let (_, d, _, v) = &tensors[i];
        Ok(match d {
            StDType::F16 => tokenclip::clip::safetensors::f16_bytes(v),
            _ => tokenclip::clip::safetensors::f32_bytes(v),
        })
    })
    .unwrap();
}

fn tiny(dir: &Path) -> PathBuf {
    gunzip("clip_tiny_openclip.safetensors.gz", dir)
}

#[test]
fn truncated_checkpoints_are_refused() {
    let dir = scratch("truncated");
    let good = std::fs::read(tiny(&dir)).unwrap();
    for cut in [3, 8, 100, good.len() / 2, good.len() - 1] {
        let p = dir.join(format!("cut{cut}.safetensors"));
        std::fs::write(&p, &good[..cut]).unwrap();
        let (err, msg) = import_fails(&p, &dir);
        assert!(matches!(err, ModelError::Corrupt { .. }), "cut at {cut}: {msg}");
        std::fs::remove_file(p).unwrap();
    }
    let pt = gunzip("clip_tiny_openai.pt.gz", &dir);
    let bytes = std::fs::read(&pt).unwrap();
    let p = dir.join("cut.pt");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).unwrap();
    import_fails(&p, &dir);
}

#[test]
fn absurd_headers_are_refused() {
    let dir = scratch("absurd");
    let p = dir.join("huge-header.safetensors");
    let mut bytes = u64::MAX.to_le_bytes().to_vec();
    bytes.extend_from_slice(b"{}");
    std::fs::write(&p, &bytes).unwrap();
    let (_, msg) = import_fails(&p, &dir);
    assert!(msg.contains("header claims"), "{msg}");

    let json = br#"{"visual.conv1.weight":{"dtype":"F32","shape":[1000000,1000000],"data_offsets":[0,4000000000000]}}"#;
    let p = dir.join("past-end.safetensors");
    let mut bytes = (json.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(json);
    bytes.extend_from_slice(&[0u8; 16]);
    std::fs::write(&p, &bytes).unwrap();
    let (_, msg) = import_fails(&p, &dir);
    assert!(msg.contains("outside the 16 data bytes"), "{msg}");

    let p = dir.join("random.bin");
    std::fs::write(&p, (0..4096u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect::<Vec<_>>()).unwrap();
    import_fails(&p, &dir);
}

#[test]
fn resnet_and_unknown_architectures_are_refused() {
    let dir = scratch("arch");
    let src = tiny(&dir);
    let p = dir.join("resnet.safetensors");
    rewrite(
        &src,
        &p,
        |t| {
            t.retain(|(n, ..)| !n.starts_with("visual."));
            t.push(("visual.layer1.0.conv1.weight".into(), StDType::F32, vec![4, 4], vec![0.0; 16]));
            t.push(("visual.attnpool.c_proj.weight".into(), StDType::F32, vec![4, 4], vec![0.0; 16]));
        },
        BTreeMap::new(),
    );
    let (err, msg) = import_fails(&p, &dir);
    assert!(matches!(err, ModelError::Unsupported { .. }) && msg.contains("ResNet"), "{msg}");

    let p = dir.join("other.safetensors");
    rewrite(&src, &p, |t| t.retain(|(n, ..)| !n.starts_with("visual.")), BTreeMap::new());
    let (err, msg) = import_fails(&p, &dir);
    assert!(matches!(err, ModelError::Unsupported { .. }) && msg.contains("no CLIP ViT"), "{msg}");
}

#[test]
fn inconsistent_shapes_are_refused() {
    let dir = scratch("shapes");
    let src = tiny(&dir);
    let cases: [ShapeCase; 4] = [
        ("pos-not-square", |t| edit(t, "visual.positional_embedding", vec![18, 128]), "not a square grid"),
        (
            "mlp-mismatch",
            |t| edit(t, "visual.transformer.resblocks.2.mlp.c_fc.weight", vec![256, 128]),
            "resblocks.2.mlp.c_fc.weight",
        ),
        ("proj-width", |t| edit(t, "text_projection", vec![128, 32]), "text_projection"),
        (
            "missing-block-tensor",
            |t| t.retain(|(n, ..)| n != "visual.transformer.resblocks.1.attn.in_proj_bias"),
            "in_proj_bias",
        ),
    ];
    for (name, f, want) in cases {
        let p = dir.join(format!("{name}.safetensors"));
        rewrite(&src, &p, f, BTreeMap::new());
        let (_, msg) = import_fails(&p, &dir);
        assert!(msg.contains(want), "{name}: {msg}");
        std::fs::remove_file(p).unwrap();
    }
}

/// Replaces tensor `name` by zeros of `shape`.
fn edit(t: &mut [(String, StDType, Vec<usize>, Vec<f32>)], name: &str, shape: Vec<usize>) {
    let e = t.iter_mut().find(|(n, ..)| n == name).unwrap();
    e.3 = vec![0.0; shape.iter().product()];
    e.2 = shape;
}

#[test]
fn model_files_are_checked_on_open() {
    let dir = scratch("model-file");
    let model = import(&tiny(&dir), &dir, WeightDType::F32, true);
    ModelFile::open(&model).unwrap();
    let meta = SafetensorsFile::open(&model).unwrap().header.metadata;
    let mut cases: Vec<(&str, Edit, BTreeMap<String, String>, &str)> = vec![
        (
            "missing",
            Box::new(|t| t.retain(|(n, ..)| n != "visual.ln_post.bias")),
            meta.clone(),
            "missing tensor `visual.ln_post.bias`",
        ),
        (
            "shape",
            Box::new(|t| edit(t, "visual.proj", vec![128, 63])),
            meta.clone(),
            "`visual.proj` has shape [128, 63], expected [128, 64]",
        ),
        (
            "dtype",
            Box::new(|t| t.iter_mut().find(|(n, ..)| n == "visual.proj").unwrap().1 = StDType::F16),
            meta.clone(),
            "`visual.proj` is F16, expected F32",
        ),
        (
            "extra",
            Box::new(|t| t.push(("visual.extra".into(), StDType::F32, vec![1], vec![0.0]))),
            meta.clone(),
            "unexpected tensors [\"visual.extra\"]",
        ),
        (
            "not-tokenclip",
            Box::new(|_| {}),
            BTreeMap::from([("format".to_string(), "pt".to_string())]),
            "not a tokenclip model file",
        ),
    ];
    let mut bad_config = meta.clone();
    bad_config.insert("config".into(), meta["config"].replace("\"dpam_start\":1", "\"dpam_start\":99"));
    cases.push(("config", Box::new(|_| {}), bad_config, "dpam_start 99"));
    for (name, f, m, want) in cases {
        let p = dir.join(format!("{name}.safetensors"));
        rewrite(&model, &p, f, m);
        let msg = ModelFile::open(&p).expect_err(name).to_string();
        assert!(msg.contains(want), "{name}: {msg}");
    }
}

#[test]
fn cli_import_failure_exits_non_zero_and_leaves_nothing() {
    let dir = scratch("cli");
    let p = dir.join("broken.pt");
    std::fs::write(&p, b"PK\x03\x04 definitely not a zip archive").unwrap();
    let out = dir.join("model.safetensors");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_tokenclip"))
        .args(["import", "--clip"])
        .arg(&p)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(text.contains("broken.pt"), "{text}");
    assert!(!out.exists());
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "temporary files left behind");
}

/// The activation is never guessed: a checkpoint that does not say needs `--activation`, a
/// stated one must agree with the source, and a config must describe the tensors beside it.
#[test]
fn activations_are_stated_by_the_source_or_refused() {
    let dir = scratch("activation");
    // An open_clip file without its open_clip_config.json.
    let src = tiny(&dir);
    std::fs::remove_file(dir.join("open_clip_config.json")).unwrap();
    let (_, msg) = import_fails(&src, &dir);
    assert!(msg.contains("--activation quick-gelu") && msg.contains("open_clip_config.json"), "{msg}");

    // --activation against what the config says.
    let dir = scratch("activation-contradiction");
    let src = gunzip("checkpoints/openclip_gelu/open_clip_model.safetensors.gz", &dir);
    let mut opts = ImportOptions::default();
    opts.activation = Some(tokenclip::clip::config::Activation::QuickGelu);
    let msg = import_clip(&src, &dir.join("out.safetensors"), &opts).unwrap_err().to_string();
    assert!(msg.contains("--activation quick_gelu contradicts model_cfg.quick_gelu"), "{msg}");

    // Configs that contradict the tensors, and an activation this program does not implement.
    for (folder, file, cfg, from, to, needle) in [
        (
            "openclip_gelu",
            "open_clip_model.safetensors.gz",
            "open_clip_config.json",
            "\"width\": 64",
            "\"width\": 96",
            "model_cfg.vision_cfg.width is 96",
        ),
        (
            "hf_gelu",
            "model.safetensors.gz",
            "config.json",
            "\"num_hidden_layers\": 1",
            "\"num_hidden_layers\": 12",
            "num_hidden_layers is 12",
        ),
        (
            "hf_gelu",
            "model.safetensors.gz",
            "config.json",
            "\"hidden_act\": \"gelu\"",
            "\"hidden_act\": \"gelu_new\"",
            "`gelu_new`",
        ),
    ] {
        let dir = scratch(&format!("activation-{folder}"));
        let src = gunzip(&format!("checkpoints/{folder}/{file}"), &dir);
        let text = std::fs::read_to_string(dir.join(cfg)).unwrap();
        assert!(text.contains(from), "{cfg} has no {from}");
        std::fs::write(dir.join(cfg), text.replacen(from, to, 1)).unwrap();
        let (_, msg) = import_fails(&src, &dir);
        assert!(msg.contains(needle), "{folder}: {msg}");
    }
}
