//! `detector.setReferences` / `clearReferences` in the browser (issue 17): the few-shot memory
//! built on WebGPU gives the CPU library's result for the same references within the ops'
//! tolerance, clearing gives zero-shot back bit for bit, bad references reject with typed
//! errors, and a GPU fault under "auto" takes the references along to the CPU.

use std::collections::BTreeMap;

use js_sys::{Array, Float32Array, Object, Reflect, Uint8Array};
use tokenclip::backend::cpu::CpuBackend;
use tokenclip::clip::few_shot::{default_layers, FewShotConfig};
use tokenclip::io::image::RgbImage;
use tokenclip::io::preprocess::detection_pixels;
use tokenclip::tokenclip::few_shot::{memory_tensors, FewShotMemory};
use tokenclip::web::{self, Detector};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

use super::api::{
    assert_kind, backend_options, detect, forget_shared, get, image_data, load, model_bytes, num, test_rgba,
    tiny_config, MemSource,
};

/// A normal image: the test image's gradients without the defect, shifted by `shift`.
fn normal_rgba(w: u32, h: u32, shift: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity((w * h * 4) as usize);
    for y in 0..h {
        for x in 0..w {
            out.extend_from_slice(&[((x + shift) * 255 / (w + shift)) as u8, (y * 255 / h) as u8, 90, 255]);
        }
    }
    out
}

fn refs(w: u32, h: u32) -> Vec<Vec<u8>> {
    vec![normal_rgba(w, h, 0), normal_rgba(w, h, 5)]
}

/// The CPU library's detection of the test image with a memory of `references`.
async fn on_cpu_library(bytes: &[u8], references: &[Vec<u8>], w: u32, h: u32) -> tokenclip::Detection {
    let mut config = tiny_config(2, true);
    let cpu = CpuBackend::new();
    let mut reference = tokenclip::Detector::load(&MemSource::new(bytes.to_vec()), &config, &cpu).unwrap();
    let layers = default_layers(&config);
    assert_eq!(layers, [1, 2], "a 2-layer tower's quarters");
    let mut patches = Vec::new();
    for r in references {
        let img = RgbImage::from_rgba(w, h, r).unwrap();
        let pixels = detection_pixels(&img, 48, "ref").unwrap();
        patches.push(reference.patch_embeddings(&cpu, &pixels, &layers).await.unwrap());
    }
    config.few_shot = Some(FewShotConfig {
        shots: references.len(),
        layers: layers.clone(),
        weight: 1.0,
        image_score: true,
        source: String::new(),
        model: String::new(),
    });
    let tensors: BTreeMap<String, Vec<f32>> = memory_tensors(&config, &layers, &patches).unwrap();
    reference.set_few_shot(FewShotMemory::from_tensors(&cpu, &config, &tensors).unwrap());
    let img = RgbImage::from_rgba(w, h, &test_rgba(w, h)).unwrap();
    reference.detect(&cpu, &detection_pixels(&img, 48, "test").unwrap()).await.unwrap()
}

fn images(list: &[Vec<u8>], w: u32, h: u32) -> Array {
    list.iter().map(|r| JsValue::from(image_data(w, h, r))).collect()
}

async fn set(det: &Detector, images: Array, options: Option<Object>) -> Result<JsValue, JsValue> {
    JsFuture::from(det.set_references(images, options)).await
}

fn map_of(r: &JsValue) -> Vec<f32> {
    get(r, "map").dyn_into::<Float32Array>().unwrap().to_vec()
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[wasm_bindgen_test]
async fn references_on_webgpu_match_the_cpu_library_and_clear() {
    forget_shared();
    web::set_test_gpu_fault(None).unwrap();
    let bytes = model_bytes(&tiny_config(2, true), None);
    let det = load(&bytes, Some(backend_options("webgpu"))).await.unwrap();
    let (w, h) = (70, 52);
    let img: JsValue = image_data(w, h, &test_rgba(w, h)).into();
    let zero = detect(&det, &img).await.unwrap();
    assert!(get(&zero, "fewShotMax").is_undefined());
    assert_eq!((det.references(), num(&zero, "mapRange")), (0, 1.0));

    let list = images(&refs(w, h), w, h);
    let broken = js_sys::Array::of1(&Uint8Array::from(&b"not an image"[..]));
    list.push(&web_sys::Blob::new_with_u8_array_sequence(&broken).unwrap());
    let made = set(&det, list, None).await.unwrap();
    assert_eq!(num(&made, "shots"), 2.0);
    let skipped = get(&made, "skipped").dyn_into::<Array>().unwrap();
    assert_eq!((skipped.length(), num(&skipped.get(0), "index")), (1, 2.0));
    assert_eq!(det.references(), 2);

    let got = detect(&det, &img).await.unwrap();
    let want = on_cpu_library(&bytes, &refs(w, h), w, h).await;
    let (map_err, score_err) = (max_abs(&map_of(&got), &want.map), (num(&got, "score") as f32 - want.score).abs());
    web_sys::console::log_1(
        &format!("references, browser vs CPU: map |Δ| {map_err:.2e}, score |Δ| {score_err:.2e}").into(),
    );
    assert!(map_err <= 1e-4 && score_err <= 1e-5, "map {map_err}, score {score_err}");
    assert!((num(&got, "fewShotMax") as f32 - want.few_shot_max.unwrap()).abs() <= 1e-4);
    assert_eq!(num(&got, "mapRange"), 2.0);
    assert_ne!(map_of(&got), map_of(&zero));

    JsFuture::from(det.clear_references()).await.unwrap();
    assert_eq!(det.references(), 0);
    let cleared = detect(&det, &img).await.unwrap();
    assert_eq!(map_of(&cleared), map_of(&zero), "cleared references give zero-shot back");
    assert_eq!(num(&cleared, "score"), num(&zero, "score"));

    assert_kind("no references", set(&det, Array::new(), None).await, "argument", "at least one image");
    let only_broken: Array = Array::of1(&web_sys::Blob::new_with_u8_array_sequence(&broken).unwrap());
    assert_kind("nothing decodable", set(&det, only_broken, None).await, "image", "none of the 1 reference images");
    let layers = Object::new();
    Reflect::set(&layers, &"layers".into(), &Array::of1(&5.into())).unwrap();
    let r = set(&det, images(&refs(w, h), w, h), Some(layers)).await;
    assert_kind("layer outside the tower", r, "argument", "few-shot layer 5 is outside the vision tower's layers 1–2");
    let weight = Object::new();
    Reflect::set(&weight, &"weight".into(), &"heavy".into()).unwrap();
    assert_kind("bad weight", set(&det, images(&refs(w, h), w, h), Some(weight)).await, "argument", "weight");
    assert_eq!(det.references(), 0, "refused references leave the detector as it was");
}

#[wasm_bindgen_test]
async fn references_move_to_the_cpu_with_a_fail_over() {
    forget_shared();
    web::set_test_gpu_fault(None).unwrap();
    let bytes = model_bytes(&tiny_config(2, true), None);
    let det = load(&bytes, Some(backend_options("auto"))).await.unwrap();
    assert_eq!(det.backend(), "webgpu");
    let (w, h) = (70, 52);
    set(&det, images(&refs(w, h), w, h), None).await.unwrap();
    web::set_test_gpu_fault(Some("lost:1".into())).unwrap();
    let img: JsValue = image_data(w, h, &test_rgba(w, h)).into();
    let redone = detect(&det, &img).await.unwrap_or_else(|e| panic!("{:?}", get(&e, "message")));
    assert_eq!((get(&redone, "backend").as_string().as_deref(), det.references()), (Some("cpu"), 2));
    let want = on_cpu_library(&bytes, &refs(w, h), w, h).await;
    // The memory was built on the GPU, the pass redone on the CPU: within the ops' tolerance.
    assert!(max_abs(&map_of(&redone), &want.map) <= 1e-4);
    assert!((num(&redone, "fewShotMax") as f32 - want.few_shot_max.unwrap()).abs() <= 1e-4);
    web::set_test_gpu_fault(None).unwrap();
    forget_shared();
}
