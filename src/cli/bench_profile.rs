//! `tokenclip bench --model M --profile`: one image's detection with every op timed
//! (`tokenclip::backend::profile`), summed by op family and by model part (each vision layer,
//! transport, few-shot, post-processing), after the plain timing. On a GPU with timestamp
//! queries the times are each kernel's own, from one pass submitted as usual; elsewhere each op
//! is run and waited for on its own.

use std::time::Instant;

use tokenclip::backend::gpu::GpuBackend;
use tokenclip::backend::profile::{totals, OpTime, Profiled};
use tokenclip::backend::Backend;
use tokenclip::clip::model_file::ModelFile;
use tokenclip::io::preprocess::detection_pixels;
use tokenclip::Detector;

use super::bench_detect::photo;

/// One image through `det` on `be`, read back; its wall time in seconds.
fn one_pass<B: Backend>(be: &B, det: &Detector<B>, pixels: &[f32]) -> anyhow::Result<f64> {
    let start = Instant::now();
    let size = det.input_size();
    be.scope(format_args!("input"));
    let x = be.upload(pixels, &[3, size, size])?;
    let t = det.forward(be, &x)?;
    pollster::block_on(be.read(&t.map))?;
    pollster::block_on(be.read(&t.global_score))?;
    if let Some((_, top)) = &t.few_shot {
        pollster::block_on(be.read(top))?;
    }
    Ok(start.elapsed().as_secs_f64())
}

/// Profiles `reps` images (after a warm-up image) and prints the tables of the one whose wall
/// time is the median.
pub fn profile_detector<B: Backend>(be: &B, file: &ModelFile, reps: usize) -> anyhow::Result<()> {
    let profiled = Profiled::new(be);
    let det = Detector::load(file, &file.config, &profiled)?;
    let pixels = detection_pixels(&photo()?, det.input_size() as u32, "benchmark image")?;
    one_pass(&profiled, &det, &pixels)?;
    profiled.take();
    let mut runs = Vec::new();
    for _ in 0..reps.max(1) {
        let wall = one_pass(&profiled, &det, &pixels)?;
        runs.push((wall, profiled.take()));
    }
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (wall, times) = &runs[runs.len() / 2];
    print(times, *wall, &format!("one op at a time (each waited for), the median of {} images", runs.len()));
    Ok(())
}

/// Profiles `reps` images on the GPU from its timestamp queries (the pass submitted as always,
/// each kernel's own GPU time) and prints the tables of the median image.
pub fn profile_gpu_timestamps(be: &GpuBackend, file: &ModelFile, reps: usize) -> anyhow::Result<()> {
    let det = Detector::load(file, &file.config, be)?;
    let pixels = detection_pixels(&photo()?, det.input_size() as u32, "benchmark image")?;
    one_pass(be, &det, &pixels)?;
    let mut runs = Vec::new();
    for _ in 0..reps.max(1) {
        be.time_kernels(true)?;
        let wall = one_pass(be, &det, &pixels)?;
        runs.push((wall, be.take_kernel_times()));
    }
    be.time_kernels(false)?;
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (wall, times) = &runs[runs.len() / 2];
    print(times, *wall, &format!("GPU timestamps of each kernel, the median of {} images", runs.len()));
    Ok(())
}

fn print(times: &[OpTime], wall: f64, how: &str) {
    let sum: f64 = times.iter().map(|t| t.seconds).sum();
    println!("  profile, {how}: {:.1} ms wall, {:.1} ms in {} ops", wall * 1e3, sum * 1e3, times.len());
    println!("    {:<22} {:>10} {:>7} {:>6}", "op family", "ms", "%", "ops");
    let mut families: Vec<_> = totals(times, |t| t.family.to_string()).into_iter().collect();
    families.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
    for (name, (s, n)) in &families {
        println!("    {name:<22} {:>10.2} {:>6.1}% {n:>6}", s * 1e3, 100.0 * s / sum);
    }
    println!("    {:<22} {:>10} {:>7}  by family", "model part", "ms", "%");
    // Model parts in the order they ran, each with its own family split.
    let mut parts: Vec<String> = Vec::new();
    for t in times {
        if parts.last() != Some(&t.scope) && !parts.contains(&t.scope) {
            parts.push(t.scope.clone());
        }
    }
    for part in parts {
        let mine: Vec<OpTime> = times.iter().filter(|t| t.scope == part).cloned().collect();
        let s: f64 = mine.iter().map(|t| t.seconds).sum();
        let mut split: Vec<_> = totals(&mine, |t| t.family.to_string()).into_iter().collect();
        split.sort_by(|a, b| b.1 .0.total_cmp(&a.1 .0));
        let split: Vec<String> = split.iter().map(|(f, (x, _))| format!("{f} {:.1}", x * 1e3)).collect();
        println!("    {part:<22} {:>10.2} {:>6.1}%  {}", s * 1e3, 100.0 * s / sum, split.join(", "));
    }
}
