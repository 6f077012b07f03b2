//! Few-shot scoring (docs/FEW_SHOT.md): the memory scoring against a NumPy float64 reference
//! (tools/make_few_shot_fixtures.py) on both backends; on synthetic textures with drawn defects,
//! a memory of k = 2 normal images through the tiny random CLIP locates the defects better than
//! zero-shot, in single and batched passes alike; no memory (or weight 0) gives zero-shot's output
//! bit for bit; bad memories refused.

mod common;

use std::path::{Path, PathBuf};

use common::clip::{scratch, Expected};
use common::dataset::textured;
use common::detect::{prompt_source, tiny_clip};
use common::{assert_close32, read, Tol};
use tokenclip::backend::cpu::CpuBackend;
use tokenclip::clip::config::ModelConfig;
use tokenclip::clip::few_shot::{default_layers, model_fingerprint, FewShotConfig};
use tokenclip::clip::import::{import_clip, ImportOptions};
use tokenclip::clip::model_file::{tensor_specs, ModelFile};
use tokenclip::clip::safetensors::StDType;
use tokenclip::eval::{pixel_metrics_exact, PixelImage};
use tokenclip::io::image::{read_image, ImageLimits};
use tokenclip::io::preprocess::detection_pixels;
use tokenclip::tokenclip::few_shot::{
    grid_scores, memory_matrix, memory_tensors, nearest_similarity, nearest_similarity_in_blocks, FewShotMemory,
    WithMemory,
};
use tokenclip::{Backend, Detection, Detector};

fn scores_match_numpy<B: Backend>(be: &B) {
    let fx = Expected::load_from("few_shot_reference.safetensors");
    let (want, _) = fx.get("scores");
    let mut layers = Vec::new();
    for l in 0..2 {
        let (refs, shape) = fx.get(&format!("reference.{l}"));
        let (k, n, d) = (shape[0], shape[1], shape[2]);
        let images: Vec<&[f32]> = refs.chunks_exact(n * d).collect();
        let memory = be.upload(&memory_matrix(&images, n, d).unwrap(), &[d, k * n]).unwrap();
        let (test, _) = fx.get(&format!("test.{l}"));
        layers.push((be.upload(test, &[n, d]).unwrap(), memory));
    }
    let pairs: Vec<_> = layers.iter().map(|(p, m)| (p, m)).collect();
    let got = read(be, &grid_scores(be, &pairs).unwrap());
    assert_close32("few-shot scores against NumPy", &got, want, Tol { rel: 0.0, abs: 2e-6 });
    // Split into ragged row blocks, the similarity maxima are the same.
    let (p, m) = &layers[1];
    let whole = read(be, &nearest_similarity(be, p, m).unwrap());
    let blocks = read(be, &nearest_similarity_in_blocks(be, p, m, 7 * 3 * 50).unwrap());
    assert_close32("nearest similarity in blocks of 7 rows", &blocks, &whole, Tol { rel: 0.0, abs: 1e-6 });
    assert!(grid_scores::<B>(be, &[]).is_err(), "an empty memory is refused");
}
on_both_backends!(memory_scoring_matches_numpy, super::scores_match_numpy);

/// The tiny CLIP at 64 px tapping layers 2 and 4, with the fixture's M = 4 prompts.
fn model(dir: &Path) -> PathBuf {
    let out = dir.join("model.safetensors");
    let mut opts = ImportOptions::default();
    opts.image_size = Some(64);
    opts.dpam_start = Some(1);
    opts.feature_layers = Some(vec![2, 4]);
    opts.prompts = Some(prompt_source("m4"));
    import_clip(&tiny_clip(dir), &out, &opts).unwrap();
    out
}

/// Preprocessed pixels (and the mask, 64 × 64) of a texture of class tint `seed % 30` with an
/// optional defect ellipse.
fn texture(dir: &Path, seed: u32, defect: Option<(f32, f32, f32, f32)>) -> (Vec<f32>, Vec<bool>) {
    let (img, mask) = textured(64, 64, seed, defect);
    let p = dir.join(format!("tex{seed}.png"));
    img.save(&p).unwrap();
    let rgb = read_image(&p, &ImageLimits::default()).unwrap();
    (detection_pixels(&rgb, 64, "texture").unwrap(), mask.pixels().map(|v| v.0[0] > 0).collect())
}

fn detect(be: &CpuBackend, d: &Detector<CpuBackend>, pixels: &[f32]) -> Detection {
    pollster::block_on(d.detect(be, pixels)).unwrap()
}

fn auroc(maps: &[Vec<f32>], masks: &[Vec<bool>]) -> f64 {
    let images: Vec<PixelImage> =
        maps.iter().zip(masks).map(|(map, mask)| PixelImage { map, mask, height: 64, width: 64 }).collect();
    pixel_metrics_exact(&images).unwrap().auroc.value().unwrap()
}

/// The memory of the normal `pixels` at every feature layer, as settings + tensors.
fn memory(
    be: &CpuBackend,
    d: &Detector<CpuBackend>,
    file: &ModelFile,
    normals: &[Vec<f32>],
) -> (ModelConfig, std::collections::BTreeMap<String, Vec<f32>>) {
    let mut config = file.config.clone();
    let layers = default_layers(&config);
    assert_eq!(layers, [1, 2, 3, 4], "the tiny CLIP's quarters");
    let images: Vec<Vec<Vec<f32>>> =
        normals.iter().map(|p| pollster::block_on(d.patch_embeddings(be, p, &layers)).unwrap()).collect();
    config.few_shot = Some(FewShotConfig {
        shots: normals.len(),
        layers: layers.clone(),
        weight: 1.0,
        image_score: true,
        source: "test".into(),
        model: model_fingerprint(file).unwrap(),
    });
    let tensors = memory_tensors(&config, &layers, &images).unwrap();
    (config, tensors)
}

#[test]
fn two_normal_images_locate_drawn_defects_better_than_zero_shot() {
    let dir = scratch("few_shot_auroc");
    let file = ModelFile::open(&model(&dir)).unwrap();
    let be = CpuBackend::new();
    let mut d = Detector::load(&file, &file.config, &be).unwrap();
    // Seeds 30 apart share the texture's tint: one product, different samples.
    let normals: Vec<Vec<f32>> = [5, 35].iter().map(|&s| texture(&dir, s, None).0).collect();
    let defects = [(20.0, 22.0, 9.0, 6.0), (44.0, 40.0, 7.0, 10.0), (30.0, 50.0, 12.0, 5.0), (12.0, 12.0, 6.0, 6.0)];
    let tests: Vec<(Vec<f32>, Vec<bool>)> =
        defects.iter().enumerate().map(|(i, &e)| texture(&dir, 65 + 30 * i as u32, Some(e))).collect();
    let masks: Vec<Vec<bool>> = tests.iter().map(|t| t.1.clone()).collect();
    let zero_shot: Vec<Detection> = tests.iter().map(|t| detect(&be, &d, &t.0)).collect();

    let (config, tensors) = memory(&be, &d, &file, &normals);
    let src = WithMemory::new(&file, tensors, config.clip.embed_dim);
    d.set_few_shot(FewShotMemory::load(&src, &be, &config).unwrap());
    let few_shot: Vec<Detection> = tests.iter().map(|t| detect(&be, &d, &t.0)).collect();

    let zs = auroc(&zero_shot.iter().map(|x| x.map.clone()).collect::<Vec<_>>(), &masks);
    let fs = auroc(&few_shot.iter().map(|x| x.map.clone()).collect::<Vec<_>>(), &masks);
    eprintln!("pixel AUROC on 4 drawn defects: zero-shot {zs:.4}, k = 2 few-shot {fs:.4} (+{:.4})", fs - zs);
    assert!(fs > zs + 0.1 && fs > 0.9, "few-shot pixel AUROC {fs:.4} does not beat zero-shot {zs:.4} by 0.1");
    for (z, f) in zero_shot.iter().zip(&few_shot) {
        let top = f.few_shot_max.unwrap();
        assert!((f.score - 0.5 * (z.score + top)).abs() < 1e-6, "image score takes the few-shot maximum in");
    }
    // As one batched pass (serve --max-batch), every image's result is its single pass's.
    let images: Vec<&[f32]> = tests.iter().map(|t| t.0.as_slice()).collect();
    let batched = pollster::block_on(d.detect_batch(&be, &images)).unwrap();
    assert_eq!(batched, few_shot, "a batch with a memory differs from the single passes");

    // No memory again, or a weight of 0 without the image score: zero-shot's output exactly.
    d.set_few_shot(None);
    let again = detect(&be, &d, &tests[0].0);
    assert_eq!(again.map, zero_shot[0].map);
    assert_eq!(again.score.to_bits(), zero_shot[0].score.to_bits());
    let mut off = config.clone();
    if let Some(f) = off.few_shot.as_mut() {
        f.weight = 0.0;
        f.image_score = false;
    }
    d.set_few_shot(FewShotMemory::load(&src, &be, &off).unwrap());
    let zeroed = detect(&be, &d, &tests[0].0);
    assert_eq!(zeroed.map, zero_shot[0].map, "weight 0 leaves the zero-shot map as it is");
    assert_eq!(zeroed.score.to_bits(), zero_shot[0].score.to_bits());
}

#[test]
fn memories_of_another_model_or_too_large_are_refused() {
    let dir = scratch("few_shot_refused");
    let file = ModelFile::open(&model(&dir)).unwrap();
    let be = CpuBackend::new();
    let d = Detector::load(&file, &file.config, &be).unwrap();
    let (mut config, tensors) = memory(&be, &d, &file, &[texture(&dir, 5, None).0]);
    let src = WithMemory::new(&file, tensors, config.clip.embed_dim);
    let fs = config.few_shot.as_mut().unwrap();
    fs.model = "0123456789abcdef".into();
    let err = FewShotMemory::load(&src, &be, &config).err().expect("a foreign memory loads").to_string();
    assert!(err.contains("another model"), "{err}");

    let mut big = file.config.clone();
    let mut fs = config.few_shot.clone().unwrap();
    fs.shots = 1 << 20;
    big.few_shot = Some(fs.clone());
    let err = big.validate().unwrap_err().to_string();
    assert!(err.contains("at most 8192"), "{err}");
    fs.layers = vec![5];
    fs.shots = 1;
    big.few_shot = Some(fs);
    let err = big.validate().unwrap_err().to_string();
    assert!(err.contains("few-shot layer 5 is outside the vision tower's layers 1–4"), "{err}");
}

#[test]
fn memory_is_stored_in_f16_when_the_model_is() {
    let dir = scratch("few_shot_f16");
    let file = ModelFile::open(&model(&dir)).unwrap();
    let mut config = file.config.clone();
    config.weights = tokenclip::clip::config::WeightDType::F16;
    config.few_shot = Some(FewShotConfig {
        shots: 2,
        layers: vec![4],
        weight: 1.0,
        image_score: true,
        source: String::new(),
        model: String::new(),
    });
    let spec = tensor_specs(&config).into_iter().find(|s| s.name == "few_shot.memory.4").unwrap();
    assert_eq!(spec.dtype, StDType::F16);
    assert_eq!(spec.shape, vec![64, 2 * 64]);
}

#[test]
fn few_shot_detection_on_the_gpu_matches_the_cpu() {
    let Some(g) = common::gpu("few_shot_detection_on_the_gpu_matches_the_cpu") else { return };
    let dir = scratch("few_shot_gpu");
    let file = ModelFile::open(&model(&dir)).unwrap();
    let be = CpuBackend::new();
    let mut cpu = Detector::load(&file, &file.config, &be).unwrap();
    let (config, tensors) = memory(&be, &cpu, &file, &[texture(&dir, 5, None).0, texture(&dir, 35, None).0]);
    let src = WithMemory::new(&file, tensors, config.clip.embed_dim);
    cpu.set_few_shot(FewShotMemory::load(&src, &be, &config).unwrap());
    let gpu = Detector::load(&src, &config, g).unwrap();
    let (pixels, _) = texture(&dir, 65, Some((20.0, 22.0, 9.0, 6.0)));
    let want = detect(&be, &cpu, &pixels);
    let got = pollster::block_on(gpu.detect(g, &pixels)).unwrap();
    assert_close32("few-shot map, GPU against CPU", &got.map, &want.map, Tol { rel: 1e-4, abs: 1e-4 });
    let (a, b) = (got.few_shot_max.unwrap(), want.few_shot_max.unwrap());
    assert!(
        (a - b).abs() < 1e-4 && (got.score - want.score).abs() < 1e-4,
        "GPU {a} {} CPU {b} {}",
        got.score,
        want.score
    );
}
