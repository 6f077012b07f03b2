//! `tokenclip bench --model M --batch N`: detection of N images as one batched pass (what
//! `serve --max-batch` does with waiting requests) against N single passes, timed side by side
//! in one run, with a check that every batched result is its single pass's.

use std::time::Instant;

use tokenclip::backend::Backend;
use tokenclip::clip::model_file::ModelFile;
use tokenclip::io::image::RgbImage;
use tokenclip::io::preprocess::detection_pixels;
use tokenclip::{Detection, Detector};

use super::bench::median;

/// The `i`-th of the batch's photo-like 1024×768 images (each a different pattern).
fn photo(i: usize) -> anyhow::Result<RgbImage> {
    RgbImage::from_rgb(1024, 768, (0..1024 * 768 * 3).map(|p| ((p * 7 + i * 31) % 251) as u8).collect())
        .ok_or_else(|| anyhow::anyhow!("test image"))
}

/// The largest absolute difference between two results' maps and scores.
fn max_diff(a: &Detection, b: &Detection) -> f32 {
    a.map.iter().zip(&b.map).map(|(x, y)| (x - y).abs()).fold((a.score - b.score).abs(), f32::max)
}

/// Times `reps` batches of `n` images against `n` single passes on the same images, after one
/// warm-up of each; prints seconds per image and the speed-up.
pub fn bench_batch<B: Backend>(be: &B, file: &ModelFile, n: usize, reps: usize) -> anyhow::Result<()> {
    if n == 0 {
        anyhow::bail!("--batch must be at least 1");
    }
    let det = Detector::load(file, &file.config, be)?;
    let size = det.input_size() as u32;
    let pixels: Vec<Vec<f32>> =
        (0..n).map(|i| Ok(detection_pixels(&photo(i)?, size, "benchmark image")?)).collect::<anyhow::Result<_>>()?;
    let images: Vec<&[f32]> = pixels.iter().map(Vec::as_slice).collect();
    let singles = || -> anyhow::Result<Vec<Detection>> {
        images.iter().map(|p| Ok(pollster::block_on(det.detect(be, p))?)).collect()
    };
    let batched = || -> anyhow::Result<Vec<Detection>> { Ok(pollster::block_on(det.detect_batch(be, &images))?) };
    let want = singles()?;
    let got = batched()?;
    let diff = want.iter().zip(&got).map(|(a, b)| max_diff(a, b)).fold(0.0f32, f32::max);
    let (mut single_t, mut batch_t) = (Vec::new(), Vec::new());
    for _ in 0..reps.max(1) {
        // Alternated, so drift on a shared machine hits both alike.
        let t = Instant::now();
        singles()?;
        single_t.push(t.elapsed().as_secs_f64() / n as f64);
        let t = Instant::now();
        batched()?;
        batch_t.push(t.elapsed().as_secs_f64() / n as f64);
    }
    let (s, b) = (median(single_t), median(batch_t));
    println!("{} — batches of {n} at {size} px, median of {} rounds", be.describe(), reps.max(1));
    println!("  single passes  {:>9.1} ms per image", s * 1e3);
    println!("  one batch      {:>9.1} ms per image  ({:.2}× the single passes' speed)", b * 1e3, s / b);
    if diff == 0.0 {
        println!("  batched results equal the single passes bit for bit");
    } else {
        println!("  batched results differ from the single passes by at most {diff:.3e} (maps and scores)");
    }
    Ok(())
}
