//! GPU faults in the browser (issue 16): with `backend: "auto"` a lost or exhausted WebGPU
//! device hands over to the wasm CPU backend (the image that failed is redone there, bit for
//! bit what the CPU library gives); with `backend: "webgpu"` a typed `gpu` error. The faults
//! come from the test-only hook `setTestGpuFault` (SwiftShader cannot lose a device on demand).

use js_sys::{Float32Array, Reflect};
use tokenclip::backend::cpu::CpuBackend;
use tokenclip::io::image::RgbImage;
use tokenclip::io::preprocess::detection_pixels;
use tokenclip::web::{self, Detector};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_test::*;

use super::api::{
    assert_kind, backend_options, detect, forget_shared, get, image_data, load, model_bytes, num, test_rgba,
    tiny_config, MemSource,
};

/// Score and map of the CPU library (compiled to wasm) on `bytes` for a `w`×`h` test image.
async fn on_cpu_library(bytes: &[u8], w: u32, h: u32) -> (f32, Vec<f32>) {
    let config = tiny_config(2, true);
    let cpu = CpuBackend::new();
    let reference = tokenclip::Detector::load(&MemSource::new(bytes.to_vec()), &config, &cpu).unwrap();
    let img = RgbImage::from_rgba(w, h, &test_rgba(w, h)).unwrap();
    let d = reference.detect(&cpu, &detection_pixels(&img, 48, "test").unwrap()).await.unwrap();
    (d.score, d.map)
}

/// A clean start: no detector on a device an earlier test destroyed, no fault left planned.
fn fresh() {
    forget_shared();
    web::set_test_gpu_fault(None).unwrap();
}

fn map_of(r: &JsValue) -> Vec<f32> {
    get(r, "map").dyn_into::<Float32Array>().unwrap().to_vec()
}

/// Loads on "auto" (through the cache under `key`, or from kept bytes), runs one image on the
/// GPU, plans `fault` at the next readback and checks the next images run on the CPU.
async fn fails_over(fault: &str, key: Option<&str>) {
    fresh();
    let bytes = model_bytes(&tiny_config(2, true), None);
    let opts = backend_options("auto");
    if let Some(k) = key {
        let _ = Detector::remove_cached(k.into()).await;
        Reflect::set(&opts, &"cache".into(), &k.into()).unwrap();
    }
    let det = load(&bytes, Some(opts)).await.unwrap();
    assert_eq!(det.backend(), "webgpu");
    assert_eq!(det.cache_key().as_deref(), key, "cache error: {:?}", det.cache_error());
    let (w, h) = (70, 52);
    let img: JsValue = image_data(w, h, &test_rgba(w, h)).into();
    let first = detect(&det, &img).await.unwrap();
    assert_eq!(get(&first, "backend").as_string().as_deref(), Some("webgpu"));

    web::set_test_gpu_fault(Some(format!("{fault}:1"))).unwrap();
    let redone = detect(&det, &img).await.unwrap_or_else(|e| panic!("{fault}: {:?}", get(&e, "message")));
    assert_eq!(get(&redone, "backend").as_string().as_deref(), Some("cpu"), "{fault}");
    assert_eq!(det.backend(), "cpu", "{fault}");
    let why = det.backend_reason().unwrap_or_default();
    let injected = if fault == "lost" { "Destroyed" } else { "Out of Memory" };
    assert!(why.contains("the GPU failed during a pass") && why.contains(injected), "{fault}: {why}");
    assert!(det.adapter().contains("WebAssembly SIMD"), "{}", det.adapter());

    // The redone image and a later one are the CPU library's result on the same bytes, bit for bit.
    let (score, map) = on_cpu_library(&bytes, w, h).await;
    let later = detect(&det, &img).await.unwrap();
    for (what, r) in [("redone", &redone), ("later", &later)] {
        assert_eq!(num(r, "score") as f32, score, "{fault} {what}");
        assert_eq!(map_of(r), map, "{fault} {what}");
    }
    // And the GPU's first result agrees with it within the ops' tolerance.
    assert!((num(&first, "score") as f32 - score).abs() <= 1e-5);
    if let Some(k) = key {
        assert!(Detector::remove_cached(k.into()).await.unwrap());
    }
    fresh();
}

#[wasm_bindgen_test]
async fn lost_gpu_during_a_pass_fails_over_to_the_cpu_under_auto() {
    // The file kept in JS memory (bytes, not cached) is what the CPU reloads from.
    fails_over("lost", None).await;
}

#[wasm_bindgen_test]
async fn gpu_out_of_memory_during_a_pass_fails_over_from_the_cache() {
    // A cached file is reloaded from the Cache API rather than kept twice.
    fails_over("oom", Some("failover-test-model")).await;
}

#[wasm_bindgen_test]
async fn gpu_fault_under_webgpu_is_a_typed_error() {
    fresh();
    let bytes = model_bytes(&tiny_config(2, true), None);
    let det = load(&bytes, Some(backend_options("webgpu"))).await.unwrap();
    let (w, h) = (40, 30);
    let img: JsValue = image_data(w, h, &test_rgba(w, h)).into();
    detect(&det, &img).await.unwrap();
    web::set_test_gpu_fault(Some("lost:1".into())).unwrap();
    assert_kind("lost under webgpu", detect(&det, &img).await, "gpu", "device was lost");
    assert_eq!(det.backend(), "webgpu", "no fail-over was asked for");
    assert_kind("the next image", detect(&det, &img).await, "gpu", "device was lost");
    // Loading again opens a new device, as the message says.
    let again = load(&bytes, Some(backend_options("webgpu"))).await.unwrap();
    let r = detect(&again, &img).await.unwrap();
    assert_eq!(get(&r, "backend").as_string().as_deref(), Some("webgpu"));
    fresh();
}

#[wasm_bindgen_test]
async fn gpu_fault_while_loading_under_auto_loads_on_the_cpu() {
    fresh();
    let bytes = model_bytes(&tiny_config(2, true), None);
    // Readback 1 of a load is its check that the weights reached the GPU.
    web::set_test_gpu_fault(Some("oom:1".into())).unwrap();
    let det = load(&bytes, Some(backend_options("auto"))).await.unwrap();
    assert_eq!(det.backend(), "cpu");
    let why = det.backend_reason().unwrap_or_default();
    assert!(why.contains("while loading the model") && why.contains("Out of Memory"), "{why}");
    let (w, h) = (70, 52);
    let r = detect(&det, &image_data(w, h, &test_rgba(w, h)).into()).await.unwrap();
    assert_eq!(map_of(&r), on_cpu_library(&bytes, w, h).await.1);
}

#[wasm_bindgen_test]
fn test_fault_plan_is_checked() {
    for bad in ["lost", "lost:0", "boom:2", "oom:x"] {
        assert_kind(bad, web::set_test_gpu_fault(Some(bad.into())), "argument", "lost:N or oom:N");
    }
    web::set_test_gpu_fault(None).unwrap();
}
