//! Batched detection (several images through the vision tower as one `[B, T, W]` pass, what
//! `serve` does with waiting requests): on both backends, for every reference variant, each
//! image's result in a batch is its single pass's bit for bit and still matches the PyTorch
//! reference (tools/make_detect_fixtures.py) at parity_detect's tolerances.

mod common;

use common::clip::scratch;
use common::detect::{assert_max_abs, import_variant, DetectFixture};
use tokenclip::backend::Backend;
use tokenclip::clip::model_file::ModelFile;
use tokenclip::Detector;

fn batch_equals_single_passes<B: Backend>(be: &B) {
    let fx = DetectFixture::load();
    let dir = scratch("batch-detect");
    for v in ["v1", "v2", "v3", "v4"] {
        let file = ModelFile::open(&import_variant(&fx, v, &dir, false)).unwrap();
        let det = Detector::load(&file, &file.config, be).unwrap();
        // Every image, then the first again: a batch may hold the same image twice.
        let mut order: Vec<usize> = (0..fx.images.len()).collect();
        order.push(0);
        let pixels: Vec<&[f32]> = order.iter().map(|i| fx.get(&format!("pixels.{i}")).0.as_slice()).collect();
        let batch = pollster::block_on(det.detect_batch(be, &pixels)).unwrap();
        assert_eq!(batch.len(), order.len());
        for ((&i, got), p) in order.iter().zip(&batch).zip(&pixels) {
            let want = |name: &str| &fx.get(&format!("{v}.{i}.{name}")).0;
            assert_max_abs(&format!("{v} image {i} map in a batch"), &got.map, want("map"), 1e-4);
            assert_max_abs(&format!("{v} image {i} score in a batch"), &[got.score], want("score"), 1e-5);
            let alone = pollster::block_on(det.detect(be, p)).unwrap();
            assert_eq!(got, &alone, "{v} image {i}: the batched result differs from its single pass");
        }
    }
    let none: Vec<&[f32]> = Vec::new();
    assert!(pollster::block_on(det_err(be, &fx, &dir, &none)).is_err(), "an empty batch is refused");
}
on_both_backends!(batched_detection_equals_single_passes, super::batch_equals_single_passes);

async fn det_err<B: Backend>(
    be: &B,
    fx: &DetectFixture,
    dir: &std::path::Path,
    pixels: &[&[f32]],
) -> Result<Vec<tokenclip::Detection>, tokenclip::Error> {
    let file = ModelFile::open(&import_variant(fx, "v1", dir, false)).unwrap();
    let det = Detector::load(&file, &file.config, be).unwrap();
    det.detect_batch(be, pixels).await
}
