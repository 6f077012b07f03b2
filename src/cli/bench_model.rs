//! `tokenclip bench --model M`: a detection model's detection (and `--profile`), or image
//! encoding with a CLIP model file.
//!
//! Reports the load time, the first image (pipelines and buffers warm up), the median of
//! `--reps` further images, and the process's peak resident memory. The image is random pixels of
//! the requested size: the encoder's cost does not depend on what the picture shows.

use std::time::Instant;

use tokenclip::backend::Backend;
use tokenclip::clip::model::ClipModel;
use tokenclip::clip::model_file::ModelFile;

use super::bench::{median, values};

/// `bench --model M`: detection timing (and the per-op profile) for a detection model at its
/// own size, else image encoding at `image_size` (default: the model's).
pub fn run_model(
    g: &super::Global,
    model: &str,
    image_size: Option<usize>,
    reps: usize,
    profile: bool,
    batch: Option<usize>,
) -> anyhow::Result<()> {
    let file = ModelFile::open(&super::models::model_path(g, model)?)?;
    let size = image_size.unwrap_or(file.config.input_size);
    let device = super::open_device(g)?;
    if let Some(n) = batch {
        if file.config.text_embeddings.is_none() || image_size.is_some() || profile {
            anyhow::bail!("--batch times detection: give a detection model, without --image-size or --profile");
        }
        return super::with_backend!(&device, be => super::bench_batch::bench_batch(be, &file, n, reps));
    }
    if file.config.text_embeddings.is_some() && image_size.is_none() {
        super::with_backend!(&device, be => super::bench_detect::bench_detector(be, &file, reps))?;
        return match &device {
            _ if !profile => Ok(()),
            tokenclip::Device::Gpu(g) if g.has_kernel_timestamps() => {
                super::bench_profile::profile_gpu_timestamps(g, &file, reps)
            }
            _ => super::with_backend!(&device, be => super::bench_profile::profile_detector(be, &file, reps)),
        };
    }
    if profile {
        anyhow::bail!("--profile times detection: give a detection model (with text embeddings), without --image-size");
    }
    super::with_backend!(&device, be => bench_encoder(be, &file, size, reps))
}

/// Times `encode_image` at `size`×`size` on `be`.
pub fn bench_encoder<B: Backend>(be: &B, file: &ModelFile, size: usize, reps: usize) -> anyhow::Result<()> {
    let start = Instant::now();
    let model = ClipModel::load(file, &file.config, be)?;
    let load = start.elapsed().as_secs_f64();
    let pixels = values(3 * size * size, 42);
    let run = || -> anyhow::Result<f64> {
        let start = Instant::now();
        let x = be.upload(&pixels, &[3, size, size])?;
        let e = model.vision.encode_image(be, &x)?;
        pollster::block_on(be.read(&e))?;
        Ok(start.elapsed().as_secs_f64())
    };
    let first = run()?;
    let times = (0..reps.max(1)).map(|_| run()).collect::<anyhow::Result<Vec<f64>>>()?;
    let name = file.config.clip.name.as_deref().unwrap_or("custom ViT");
    let grid = size / file.config.clip.vision.patch_size;
    println!(
        "{} — {name} ({:?} weights), image encoding at {size} px ({} tokens)",
        be.describe(),
        file.config.weights,
        grid * grid + 1
    );
    println!(
        "  load {:.2} s, first image {:.3} s, median of {} {:.3} s (min {:.3} s)",
        load,
        first,
        times.len(),
        median(times.clone()),
        times.iter().copied().fold(f64::INFINITY, f64::min)
    );
    let photo =
        tokenclip::io::image::RgbImage::from_rgb(1024, 768, (0..1024 * 768 * 3).map(|i| (i * 7 % 251) as u8).collect())
            .ok_or_else(|| anyhow::anyhow!("test image"))?;
    let start = Instant::now();
    let _ = tokenclip::io::preprocess::preprocess(&photo, size as u32, tokenclip::io::preprocess::ResizeMode::Squash);
    println!(
        "  preprocessing a 1024×768 image to {size}×{size} (bicubic, normalise): {:.1} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    if let Some(kib) = peak_rss_kib() {
        println!("  peak resident memory {:.0} MiB", kib as f64 / 1024.0);
    }
    Ok(())
}

/// VmHWM from /proc/self/status (Linux); `None` elsewhere.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
