//! `tokenclip bench --model M` on a detection model: time per image of the whole detection
//! path, split into preprocessing, encoder (vision tower with DPAM), transport (cost, Sinkhorn,
//! top-K, token probabilities), the few-shot map (with a memory) and post-processing
//! (upsampling, smoothing, score, readback).
//!
//! The stage split is exact on the CPU, whose ops run as they are called; on the GPU the pass is
//! recorded first and runs at the readback, so only the total is meaningful there.

use std::time::Instant;

use tokenclip::backend::Backend;
use tokenclip::clip::model_file::ModelFile;
use tokenclip::io::image::RgbImage;
use tokenclip::io::preprocess::detection_pixels;
use tokenclip::tokenclip::detector::Stage;
use tokenclip::Detector;

use super::bench::median;
use super::bench_model::peak_rss_kib;

/// Seconds per stage of one image: preprocessing, encoder, transport, few-shot, post-processing.
type Split = [f64; 5];

fn one_image<B: Backend>(be: &B, det: &Detector<B>, photo: &RgbImage) -> anyhow::Result<Split> {
    let start = Instant::now();
    let pixels = detection_pixels(photo, det.input_size() as u32, "benchmark image")?;
    let size = det.input_size();
    let x = be.upload(&pixels, &[3, size, size])?;
    let mut marks = vec![start.elapsed().as_secs_f64()];
    let t = det.forward_observed(be, &x, &mut |stage| {
        if stage != Stage::PostProcessing {
            marks.push(start.elapsed().as_secs_f64());
        }
    })?;
    if marks.len() == 3 {
        // No memory: the few-shot stage took no time.
        marks.push(marks[2]);
    }
    pollster::block_on(be.read(&t.map))?;
    pollster::block_on(be.read(&t.global_score))?;
    if let Some((_, top)) = &t.few_shot {
        pollster::block_on(be.read(top))?;
    }
    marks.push(start.elapsed().as_secs_f64());
    Ok([marks[0], marks[1] - marks[0], marks[2] - marks[1], marks[3] - marks[2], marks[4] - marks[3]])
}

/// The benchmark's 1024×768 photo-like image.
pub fn photo() -> anyhow::Result<RgbImage> {
    RgbImage::from_rgb(1024, 768, (0..1024 * 768 * 3).map(|i| (i * 7 % 251) as u8).collect())
        .ok_or_else(|| anyhow::anyhow!("test image"))
}

/// Times detection on a 1024×768 photo-like image, `reps` times after a first (warm-up) image.
pub fn bench_detector<B: Backend>(be: &B, file: &ModelFile, reps: usize) -> anyhow::Result<()> {
    let start = Instant::now();
    let det = Detector::load(file, &file.config, be)?;
    let load = start.elapsed().as_secs_f64();
    let photo = photo()?;
    let first = one_image(be, &det, &photo)?;
    let runs = (0..reps.max(1)).map(|_| one_image(be, &det, &photo)).collect::<anyhow::Result<Vec<Split>>>()?;
    let c = &file.config;
    let size = c.input_size;
    let grid = size / c.clip.vision.patch_size;
    println!(
        "{} — {} ({:?} weights), detection at {size} px ({} tokens), M = {}, feature layers {:?}{}",
        be.describe(),
        c.clip.name.as_deref().unwrap_or("custom ViT"),
        c.weights,
        grid * grid + 1,
        c.text_embeddings.as_ref().map_or(0, |e| e.subspaces),
        c.feature_layers,
        c.few_shot
            .as_ref()
            .map_or(String::new(), |f| format!(", few-shot memory k = {} at layers {:?}", f.shots, f.layers))
    );
    println!("  load {load:.2} s, first image {:.3} s", first.iter().sum::<f64>());
    let stage = |i: usize| median(runs.iter().map(|r| r[i]).collect());
    let total = median(runs.iter().map(|r| r.iter().sum()).collect());
    println!("  median of {} images: {total:.3} s per image", runs.len());
    for (i, name) in [
        "preprocessing (1024×768 → S×S)",
        "encoder (vision + DPAM)",
        "transport",
        "few-shot map",
        "post-processing + readback",
    ]
    .iter()
    .enumerate()
    {
        let t = stage(i);
        println!("    {name:<34} {:>9.1} ms  {:>5.1} %", t * 1e3, 100.0 * t / total);
    }
    if let Some(kib) = peak_rss_kib() {
        println!("  peak resident memory {:.0} MiB", kib as f64 / 1024.0);
    }
    Ok(())
}
