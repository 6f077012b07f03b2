//! The JS API (`src/web.rs`) in the browser, called from Rust as a page would call it from JS: a
//! small random-weight model built in memory, `Detector.load` / `detect` on WebGPU against the
//! library's `Detector` on the CPU backend (compiled to wasm) for the same bytes and pixels, the
//! model cache, overlays, and every kind of bad input rejecting with a typed `TokenclipError`.

use std::collections::BTreeMap;

use js_sys::{Float32Array, Object, Reflect, Uint8Array};
use tokenclip::backend::cpu::CpuBackend;
use tokenclip::clip::config::{ClipConfig, ModelConfig, TextEmbeddingsConfig, VisionConfig, WeightDType};
use tokenclip::clip::model_file::{metadata, tensor_specs};
use tokenclip::clip::safetensors::{header_len, parse_header, Header, StDType};
use tokenclip::clip::weights::{RawTensor, TensorSource};
use tokenclip::clip::ModelError;
use tokenclip::io::image::RgbImage;
use tokenclip::io::overlay::encode_png;
use tokenclip::io::preprocess::detection_pixels;
use tokenclip::web::{self, Detector};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;
use web_sys::{Blob, ImageData};

use super::values;

/// A tiny ViT (width 64, 2 layers, patch 8) at S = 48 with M = 2 subspaces, f16 weights.
pub(crate) fn tiny_config(layers: usize, with_text_embeddings: bool) -> ModelConfig {
    let vision = VisionConfig {
        width: 64,
        layers,
        heads: 1,
        mlp_width: 256,
        patch_size: 8,
        image_size: 32,
        activation: Default::default(),
    };
    let clip = ClipConfig { name: None, embed_dim: 32, vision, text: None };
    let mut config = ModelConfig::for_clip(clip, WeightDType::F16);
    config.input_size = 48;
    config.feature_layers = vec![layers];
    config.dpam_start = 1;
    config.text_embeddings =
        with_text_embeddings.then(|| TextEmbeddingsConfig { subspaces: 2, source: "web test".into() });
    config
}

/// A safetensors file with `config`'s metadata and tensors (random weights, unit LayerNorms,
/// L2-normalised text embeddings).
pub(crate) fn model_bytes(config: &ModelConfig, meta: Option<BTreeMap<String, String>>) -> Vec<u8> {
    let meta = meta.unwrap_or_else(|| metadata(config).unwrap());
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::to_value(&meta).unwrap());
    let mut data = Vec::new();
    for (i, s) in tensor_specs(config).iter().enumerate() {
        let n: usize = s.shape.iter().product();
        let mut v: Vec<f32> = if s.name.contains("ln_") && s.name.ends_with(".weight") {
            vec![1.0; n]
        } else {
            values(n, 100 + i as u32).iter().map(|x| x * 0.1).collect()
        };
        if s.name.starts_with("text_embeddings.") {
            for row in v.chunks_mut(config.clip.embed_dim) {
                let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt();
                row.iter_mut().for_each(|x| *x /= norm);
            }
        }
        let bytes: Vec<u8> = match s.dtype {
            StDType::F16 => v.iter().flat_map(|x| half::f16::from_f32(*x).to_le_bytes()).collect(),
            _ => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        };
        header.insert(
            s.name.clone(),
            serde_json::json!({"dtype": s.dtype.name(), "shape": s.shape, "data_offsets": [data.len(), data.len() + bytes.len()]}),
        );
        data.extend(bytes);
    }
    let mut json = serde_json::to_vec(&serde_json::Value::Object(header)).unwrap();
    while json.len() % 8 != 0 {
        json.push(b' ');
    }
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend(json);
    out.extend(data);
    out
}

/// The same bytes as a native-style tensor source, for the CPU reference.
pub(crate) struct MemSource {
    bytes: Vec<u8>,
    header: Header,
}

impl MemSource {
    pub(crate) fn new(bytes: Vec<u8>) -> Self {
        let prefix = header_len(&bytes[..8], bytes.len() as u64, "mem").unwrap();
        let header = parse_header(&bytes[8..prefix as usize], prefix, bytes.len() as u64, "mem").unwrap();
        MemSource { bytes, header }
    }
}

impl TensorSource for MemSource {
    fn source_name(&self) -> &str {
        "mem"
    }
    fn read_raw(&self, name: &str) -> Result<RawTensor, ModelError> {
        let e = &self.header.tensors[name];
        let bytes = self.bytes[e.offset as usize..(e.offset + e.bytes) as usize].to_vec();
        Ok(RawTensor { dtype: e.dtype, shape: e.shape.clone(), bytes })
    }
}

/// A test image: smooth gradients with a bright square "defect", RGBA, partly transparent.
pub(crate) fn test_rgba(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity((w * h * 4) as usize);
    for y in 0..h {
        for x in 0..w {
            let defect = (w / 3..w / 2).contains(&x) && (h / 3..h / 2).contains(&y);
            let (r, g, b) = if defect { (250, 240, 20) } else { ((x * 255 / w) as u8, (y * 255 / h) as u8, 90) };
            out.extend_from_slice(&[r, g, b, if x == 0 { 128 } else { 255 }]);
        }
    }
    out
}

/// `ImageData` over a JS copy (the constructor would otherwise keep a view of wasm memory).
pub(crate) fn image_data(w: u32, h: u32, rgba: &[u8]) -> ImageData {
    let array = js_sys::Uint8ClampedArray::new_with_length(rgba.len() as u32);
    array.copy_from(rgba);
    ImageData::new_with_js_u8_clamped_array_and_sh(&array, w, h).unwrap()
}

fn blob(bytes: &[u8], mime: &str) -> Blob {
    let opts = web_sys::BlobPropertyBag::new();
    opts.set_type(mime);
    Blob::new_with_u8_array_sequence_and_options(&js_sys::Array::of1(&Uint8Array::from(bytes)), &opts).unwrap()
}

pub(crate) fn get(o: &JsValue, k: &str) -> JsValue {
    Reflect::get(o, &k.into()).unwrap()
}

pub(crate) fn num(o: &JsValue, k: &str) -> f64 {
    get(o, k).as_f64().unwrap_or_else(|| panic!("`{k}` is not a number"))
}

pub(crate) async fn load(bytes: &[u8], options: Option<Object>) -> Result<Detector, JsValue> {
    Detector::load(Uint8Array::from(bytes).into(), options).await
}

/// Drops the shared detector (after a test destroyed the GPU device under it).
pub(crate) fn forget_shared() {
    SHARED.with(|s| *s.borrow_mut() = None);
}

thread_local! {
    static SHARED: std::cell::RefCell<Option<std::rc::Rc<Detector>>> = const { std::cell::RefCell::new(None) };
}

/// One detector on `tiny_config(2, true)` shared by the tests (each load builds every pipeline,
/// which SwiftShader takes a while to do).
async fn shared() -> std::rc::Rc<Detector> {
    if let Some(d) = SHARED.with(|s| s.borrow().clone()) {
        return d;
    }
    let d = std::rc::Rc::new(load(&model_bytes(&tiny_config(2, true), None), None).await.unwrap());
    SHARED.with(|s| *s.borrow_mut() = Some(d.clone()));
    d
}

pub(crate) async fn detect(det: &Detector, image: &JsValue) -> Result<JsValue, JsValue> {
    JsFuture::from(det.detect(image.clone())).await
}

/// Asserts a promise rejected with a `TokenclipError` of `kind` whose message contains `needle`.
#[track_caller]
pub(crate) fn assert_kind<T>(what: &str, r: Result<T, JsValue>, kind: &str, needle: &str) {
    let Err(e) = r else { panic!("{what}: resolved, expected a {kind} error") };
    let message = get(&e, "message").as_string().unwrap_or_default();
    assert!(e.is_instance_of::<js_sys::Error>(), "{what}: rejected with a non-Error: {e:?}");
    assert_eq!(get(&e, "name").as_string().as_deref(), Some("TokenclipError"), "{what}: {message}");
    assert_eq!(get(&e, "kind").as_string().as_deref(), Some(kind), "{what}: {message}");
    assert!(message.contains(needle), "{what}: message {message:?} lacks {needle:?}");
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[wasm_bindgen_test]
async fn detect_in_browser_matches_cpu_backend() {
    let config = tiny_config(2, true);
    let bytes = model_bytes(&config, None);
    let det = shared().await;
    assert_eq!(det.input_size(), 48);
    assert_eq!(det.origin(), "bytes");
    let (w, h) = (70, 52);
    let rgba = test_rgba(w, h);
    let got = detect(&det, &image_data(w, h, &rgba).into()).await.unwrap();

    let cpu = CpuBackend::new();
    let reference = tokenclip::Detector::load(&MemSource::new(bytes), &config, &cpu).unwrap();
    let img = RgbImage::from_rgba(w, h, &rgba).unwrap();
    let want = reference.detect(&cpu, &detection_pixels(&img, 48, "test").unwrap()).await.unwrap();

    let map = get(&got, "map").dyn_into::<Float32Array>().unwrap().to_vec();
    assert_eq!((num(&got, "width"), num(&got, "height")), (48.0, 48.0));
    assert_eq!((num(&got, "imageWidth"), num(&got, "imageHeight"), num(&got, "layers")), (70.0, 52.0, 1.0));
    // GPU (SwiftShader) against the CPU twin on the same f16 weights: f32 accumulation in a
    // different order; the ops' own tolerances are 1e-4 (matmul, attention) and 1e-6 (scores).
    let map_err = max_abs(&map, &want.map);
    let score_err = (num(&got, "score") as f32 - want.score).abs();
    web_sys::console::log_1(&format!("browser vs CPU: map max |Δ| {map_err:.2e}, score |Δ| {score_err:.2e}").into());
    assert!(map_err <= 1e-4, "map differs by {map_err}");
    assert!(score_err <= 1e-5, "score differs by {score_err}");
    assert!((num(&got, "mapMax") as f32 - want.map_max).abs() <= 1e-4);
    assert!((num(&got, "globalScore") as f32 - want.global_score).abs() <= 1e-5);

    // The same pixels as a PNG Blob (our decoder) and concurrent calls (queued) give the same result.
    let png = encode_png(&img).unwrap();
    let from_png = det.detect(blob(&png, "image/png").into());
    let again = det.detect(image_data(w, h, &rgba).into());
    let (a, b) = (JsFuture::from(from_png).await.unwrap(), JsFuture::from(again).await.unwrap());
    for r in [a, b] {
        assert_eq!(get(&r, "map").dyn_into::<Float32Array>().unwrap().to_vec(), map);
    }
}

#[wasm_bindgen_test]
async fn overlay_and_png_helpers() {
    let det = shared().await;
    let (w, h) = (40, 30);
    let data = image_data(w, h, &test_rgba(w, h));
    let decoded = web::decode_image(
        blob(&encode_png(&RgbImage::from_rgba(w, h, &test_rgba(w, h)).unwrap()).unwrap(), "image/png").into(),
    )
    .await
    .unwrap();
    assert_eq!(decoded.data().to_vec(), data.data().to_vec(), "decodeImage gives the PNG's pixels");
    let r = detect(&det, &data.clone().into()).await.unwrap();
    let opts = Object::new();
    Reflect::set(&opts, &"colorBar".into(), &false.into()).unwrap();
    Reflect::set(&opts, &"threshold".into(), &0.0.into()).unwrap();
    let plain = web::render_overlay_js(&data, &r, Some(opts)).unwrap();
    assert_eq!((plain.width(), plain.height()), (w, h));
    // Threshold 0 outlines the whole image's border in white.
    assert_eq!(&plain.data()[..4], &[255, 255, 255, 255]);
    let with_bar = web::render_overlay_js(&data, &r, None).unwrap();
    assert!(with_bar.width() > w, "the colour bar is appended by default");
    let png = web::encode_png_js(&with_bar).unwrap().to_vec();
    assert!(png.starts_with(&[0x89, b'P', b'N', b'G']));
    let bad = Object::new();
    Reflect::set(&bad, &"opacity".into(), &2.0.into()).unwrap();
    assert_kind("opacity 2", web::render_overlay_js(&data, &r, Some(bad)), "argument", "opacity");
}

#[wasm_bindgen_test]
async fn model_cache_round_trip() {
    let config = tiny_config(2, true);
    let bytes = model_bytes(&config, None);
    let key = "web-test-model";
    let _ = Detector::remove_cached(key.into()).await;
    let opts = Object::new();
    Reflect::set(&opts, &"cache".into(), &key.into()).unwrap();
    let phases = js_sys::Array::new();
    let log = phases.clone();
    let cb = wasm_bindgen::closure::Closure::<dyn Fn(JsValue)>::new(move |p: JsValue| {
        log.push(&get(&p, "phase"));
    });
    Reflect::set(&opts, &"onProgress".into(), cb.as_ref()).unwrap();
    let first = load(&bytes, Some(opts)).await.unwrap();
    assert_eq!(first.cache_key().as_deref(), Some(key), "cache error: {:?}", first.cache_error());
    let seen: Vec<String> = phases.iter().filter_map(|p| p.as_string()).collect();
    assert!(seen.contains(&"gpu".to_string()) && seen.contains(&"upload".to_string()), "phases {seen:?}");

    let listed = Detector::cached_models().await.unwrap();
    let entry = listed.iter().find(|m| get(m, "key").as_string().as_deref() == Some(key)).expect("listed");
    assert_eq!(num(&entry, "bytes"), bytes.len() as f64);

    let second = Detector::load_cached(key.into(), None).await.unwrap();
    assert_eq!(second.origin(), "cache");
    let (w, h) = (33, 21);
    let img: JsValue = image_data(w, h, &test_rgba(w, h)).into();
    let (a, b) = (detect(&first, &img).await.unwrap(), detect(&second, &img).await.unwrap());
    assert_eq!(num(&a, "score"), num(&b, "score"));
    assert!(Detector::remove_cached(key.into()).await.unwrap());
    assert_kind("load of a removed key", Detector::load_cached(key.into(), None).await, "storage", key);
}

#[wasm_bindgen_test]
async fn bad_models_reject_with_model_errors() {
    assert_kind("random bytes", load(b"this is not a model file at all", None).await, "model", "corrupt");
    assert_kind("empty", load(b"", None).await, "model", "shorter than a safetensors header");

    // A safetensors file that is not a tokenclip model (e.g. a CLIP checkpoint before import).
    let config = tiny_config(2, true);
    let plain = model_bytes(&config, Some(BTreeMap::from([("format".to_string(), "pt".to_string())])));
    assert_kind("plain safetensors", load(&plain, None).await, "model", "tokenclip import");

    // A config saying 3 layers over the tensors of a 2-layer model: another architecture.
    let mut meta = metadata(&tiny_config(3, true)).unwrap();
    meta.insert("config".into(), serde_json::to_string(&tiny_config(3, true)).unwrap());
    let mismatched = model_bytes(&config, Some(meta));
    assert_kind("another architecture", load(&mismatched, None).await, "model", "missing tensor");

    // CLIP only, no text embeddings: cannot detect.
    let clip_only = model_bytes(&tiny_config(2, false), None);
    assert_kind("no text embeddings", load(&clip_only, None).await, "model", "no text embeddings");

    // Asked to be cached, a file that is not a model is not left in the cache.
    let opts = Object::new();
    Reflect::set(&opts, &"cache".into(), &"web-test-bad".into()).unwrap();
    assert_kind("bad bytes, cached", load(&plain, Some(opts)).await, "model", "tokenclip import");
    let listed = Detector::cached_models().await.unwrap();
    assert!(!listed.iter().any(|m| get(&m, "key").as_string().as_deref() == Some("web-test-bad")));

    assert_kind("a number", Detector::load(JsValue::from(42), None).await, "argument", "Detector.load");
    let opts = Object::new();
    Reflect::set(&opts, &"cache".into(), &JsValue::from(3)).unwrap();
    assert_kind("bad cache option", load(&plain, Some(opts)).await, "argument", "cache");
}

#[wasm_bindgen_test]
async fn bad_images_reject_with_image_errors() {
    let det = shared().await;
    let garbage_png = [&[0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'][..], &[7u8; 64][..]].concat();
    assert_kind("damaged PNG", detect(&det, &blob(&garbage_png, "image/png").into()).await, "image", "decode");
    assert_kind(
        "not an image",
        detect(&det, &blob(b"plain text, no image here", "text/plain").into()).await,
        "image",
        "browser cannot decode",
    );
    assert_kind("empty file", detect(&det, &blob(b"", "image/png").into()).await, "image", "empty");

    // A PNG header claiming 20000 x 20000: refused from the header, nothing decoded.
    let mut huge = vec![0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n', 0, 0, 0, 13];
    huge.extend_from_slice(b"IHDR");
    huge.extend_from_slice(&20000u32.to_be_bytes());
    huge.extend_from_slice(&20000u32.to_be_bytes());
    huge.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
    assert_kind("huge PNG", detect(&det, &blob(&huge, "image/png").into()).await, "image", "larger than the limit");
    let wide = ImageData::new_with_sw(16385, 1).unwrap();
    assert_kind("huge ImageData", detect(&det, &wide.into()).await, "image", "larger than the limit");

    assert_kind("a number", detect(&det, &JsValue::from(3)).await, "argument", "detect()");
    assert_kind("a plain object", detect(&det, &Object::new().into()).await, "argument", "detect()");
    // The detector still works after all of that.
    let (w, h) = (20, 20);
    detect(&det, &image_data(w, h, &test_rgba(w, h)).into()).await.unwrap();
}

#[wasm_bindgen_test]
async fn model_too_large_for_the_adapter_is_refused_before_upload() {
    // S = 8208 with patch 8: 1,052,677 tokens × 256 MLP columns × 4 bytes is 1.0 GiB, over
    // SwiftShader's (and most GPUs') maximum binding; refused from the config, nothing uploaded.
    let mut config = tiny_config(2, true);
    config.input_size = 8208;
    let r = load(&model_bytes(&config, None), None).await;
    assert_kind("S = 8208", r, "adapter-limits", "maxStorageBufferBindingSize");
}

#[wasm_bindgen_test]
async fn check_web_gpu_reports_the_adapter() {
    let status = web::check_web_gpu().await;
    assert_eq!(get(&status, "available").as_bool(), Some(true), "{:?}", get(&status, "message"));
    let limits = get(&status, "limits");
    assert!(num(&limits, "maxStorageBufferBindingSize") >= 128.0 * 1024.0 * 1024.0);
    assert!(get(&status, "adapter").as_string().is_some());
}

pub(crate) fn backend_options(backend: &str) -> Object {
    let o = Object::new();
    Reflect::set(&o, &"backend".into(), &backend.into()).unwrap();
    o
}

#[wasm_bindgen_test]
async fn cpu_backend_in_browser_matches_cpu_library_and_webgpu() {
    let config = tiny_config(2, true);
    let bytes = model_bytes(&config, None);
    let det = load(&bytes, Some(backend_options("cpu"))).await.unwrap();
    assert_eq!(det.backend(), "cpu");
    assert!(det.adapter().contains("WebAssembly SIMD"), "{}", det.adapter());
    assert_eq!(det.backend_reason(), None, "the CPU was asked for, not fallen back to");
    let (w, h) = (70, 52);
    let rgba = test_rgba(w, h);
    let got = detect(&det, &image_data(w, h, &rgba).into()).await.unwrap();

    // The JS API's CPU path is the library's CPU backend on the same f16 weights and pixels:
    // the same code in the same module, so the same bits.
    let cpu = CpuBackend::new();
    let reference = tokenclip::Detector::load(&MemSource::new(bytes), &config, &cpu).unwrap();
    let img = RgbImage::from_rgba(w, h, &rgba).unwrap();
    let want = reference.detect(&cpu, &detection_pixels(&img, 48, "test").unwrap()).await.unwrap();
    let map = get(&got, "map").dyn_into::<Float32Array>().unwrap().to_vec();
    assert_eq!(map, want.map);
    assert_eq!(num(&got, "score") as f32, want.score);

    // And WebGPU (SwiftShader) on the same model agrees within the ops' tolerances.
    let gpu = shared().await;
    assert_eq!(gpu.backend(), "webgpu");
    let on_gpu = detect(&gpu, &image_data(w, h, &rgba).into()).await.unwrap();
    let gpu_map = get(&on_gpu, "map").dyn_into::<Float32Array>().unwrap().to_vec();
    assert!(max_abs(&map, &gpu_map) <= 1e-4, "CPU and WebGPU maps differ by {}", max_abs(&map, &gpu_map));
    assert!((num(&got, "score") - num(&on_gpu, "score")).abs() <= 1e-5);
    assert!(web::memory::wasm_memory_bytes() > 0.0);
}

#[wasm_bindgen_test]
async fn backend_option_is_checked() {
    let bytes = model_bytes(&tiny_config(1, true), None);
    let r = load(&bytes, Some(backend_options("gpu"))).await;
    assert_kind("backend: gpu", r, "argument", "\"auto\", \"webgpu\" or \"cpu\"");
    // With an adapter (CI's SwiftShader), "auto" and "webgpu" both take it.
    for b in ["auto", "webgpu"] {
        let det = load(&bytes, Some(backend_options(b))).await.unwrap();
        assert_eq!(det.backend(), "webgpu", "backend: {b}");
    }
}

#[wasm_bindgen_test]
async fn model_too_large_for_wasm_memory_is_refused_on_the_cpu() {
    // S = 8208 with patch 8: 1,052,677 tokens, whose attention scores alone need 8 TiB.
    let mut config = tiny_config(2, true);
    config.input_size = 8208;
    let r = load(&model_bytes(&config, None), Some(backend_options("cpu"))).await;
    assert_kind("S = 8208 on the CPU", r, "memory", "GiB of WebAssembly memory");
}
