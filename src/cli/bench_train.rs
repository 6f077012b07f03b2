//! `tokenclip bench train --model M`: one training step (text encoder forward with the prompts,
//! loss on cached features, exact backward, Adam) at the paper's shapes — batch 8, M = 4, the
//! model's text tower, features of its input size — and the time to compute one image's
//! features. Features here are random unit vectors: a step's cost does not depend on them.

use std::time::Instant;

use tokenclip::backend::Backend;
use tokenclip::clip::model_file::ModelFile;
use tokenclip::train::config::TrainConfig;
use tokenclip::train::features::FeatureExtractor;
use tokenclip::train::loss::TrainImage;
use tokenclip::train::rng::Rng;
use tokenclip::train::text::{bench_text_step, TextModel};
use tokenclip::train::trainer::Trainer;

use super::bench::median;

fn unit_rows(rng: &mut Rng, rows: usize, d: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..rows * d).map(|_| rng.normal() as f32).collect();
    for r in v.chunks_exact_mut(d) {
        let n = r.iter().map(|x| x * x).sum::<f32>().sqrt();
        r.iter_mut().for_each(|x| *x /= n);
    }
    v
}

/// A batch of random features and masks of the model's shapes.
fn batch(file: &ModelFile, n: usize) -> Vec<TrainImage> {
    let c = &file.config;
    let (s, g, d) = (c.input_size, c.input_size / c.clip.vision.patch_size, c.clip.embed_dim);
    let mut rng = Rng::new(7);
    (0..n)
        .map(|i| TrainImage {
            patches: (0..c.feature_layers.len()).map(|_| unit_rows(&mut rng, g * g, d)).collect(),
            global: unit_rows(&mut rng, 1, d),
            grid: g,
            label: i % 2 == 1,
            mask: (i % 2 == 1)
                .then(|| (0..s * s).map(|p| if (p / s) * 4 < s && (p % s) * 4 < s { 1.0 } else { 0.0 }).collect()),
        })
        .collect()
}

/// Times training steps (median of `reps` after one warm-up) and feature extraction.
pub fn bench_train<B: Backend>(be: &B, file: &ModelFile, reps: usize) -> anyhow::Result<()> {
    let config = TrainConfig::default();
    let images = batch(file, config.batch);
    let mut trainer = Trainer::new(file, config.clone(), images.len())?;
    let pc = trainer.prompts().config.clone();
    let step = |t: &mut Trainer| -> anyhow::Result<f64> {
        t.progress.batch = 0;
        let start = Instant::now();
        t.step(&images)?;
        Ok(start.elapsed().as_secs_f64())
    };
    let first = step(&mut trainer)?;
    let times = (0..reps.max(1)).map(|_| step(&mut trainer)).collect::<anyhow::Result<Vec<f64>>>()?;
    let c = &file.config;
    println!(
        "{} — {}: training step, batch {}, M = {}, {} context + {} deep layers × {} tokens, features {}×{} at {} px",
        be.describe(),
        c.clip.name.as_deref().unwrap_or("custom CLIP"),
        config.batch,
        pc.subspaces,
        pc.context_tokens,
        pc.deep_layers,
        pc.deep_tokens,
        images[0].grid * images[0].grid,
        c.clip.embed_dim,
        c.input_size
    );
    println!("  first step {first:.3} s, median of {} {:.3} s", times.len(), median(times.clone()));
    if let Some(text) = &c.clip.text {
        let model = TextModel::<f32>::load(file, text, &pc)?;
        let t = bench_text_step(&model, trainer.prompts(), reps.max(1))?;
        let (f, b) = (t.forward.as_secs_f64(), t.backward.as_secs_f64());
        println!("    of which text encoder forward {f:.3} s, backward {b:.3} s; loss, its gradient and Adam the rest");
    }
    let ex = FeatureExtractor::load(file, be, None)?;
    let s = c.input_size;
    let pixels: Vec<f32> = (0..3 * s * s).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect();
    let mut feature_times = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        pollster::block_on(ex.compute(be, &pixels))?;
        feature_times.push(t.elapsed().as_secs_f64());
    }
    println!(
        "  features of one image (vision tower + DPAM, readback): first {:.3} s, then {:.3} s",
        feature_times[0],
        median(feature_times[1..].to_vec())
    );
    Ok(())
}
