//! The detector thread: loads the model once, then runs one pass per queued job, in arrival
//! order, and answers each on its own channel.
//!
//! Requests are not batched into one pass: the detector's pass is per image. On the CPU
//! backend one ViT-B/16 image already runs its matmuls at 240–290 of about 349 GFLOP/s on this
//! machine (BENCHMARKS.md), so a batch could gain at most about a fifth there; a batched GPU
//! pass would gain more, and is not built.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokenclip::clip::model_file::ModelFile;
use tokenclip::{BackendChoice, Detection, DeviceDetector};
use tokio::sync::{mpsc, oneshot};

use super::api_error::ApiError;
use super::state::AppState;
use crate::cli::{gpu_fault, open_device, Global};

/// A test-only pause before each pass, in milliseconds, so tests can hold requests in flight;
/// never set in normal use.
pub const DELAY_ENV: &str = "TOKENCLIP_TEST_SERVE_DELAY_MS";

/// One image to detect: its preprocessed pixels and where the result goes.
pub struct Job {
    /// `3 × S × S` pixels, as `detection_pixels` makes them.
    pub pixels: Vec<f32>,
    /// The handler waiting for the result; closed when it gave up (timeout, disconnect).
    pub reply: oneshot::Sender<Result<Detection, ApiError>>,
}

/// Loads the model on the backend `g` asks for, marks the server ready, and serves jobs until
/// every sender is gone. A failed load is recorded in `state` and stops the server.
pub fn run(g: &Global, file: &ModelFile, mut jobs: mpsc::Receiver<Job>, state: &AppState) {
    let loaded = open_device(g)
        .and_then(|device| Ok(DeviceDetector::load(device, g.backend == BackendChoice::Auto, file, &file.config)?));
    let mut detector = match loaded {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "the model could not be loaded");
            state.fail(format!("{e:#}"));
            state.stop.notify_one();
            return;
        }
    };
    if let Some(note) = detector.take_switch() {
        tracing::warn!("{note}");
    }
    tracing::info!(backend = %detector.describe(), model = %file.path(), "model loaded");
    state.ready.store(true, Ordering::SeqCst);
    let delay = std::env::var(DELAY_ENV).ok().and_then(|v| v.parse().ok()).map(Duration::from_millis);
    while let Some(job) = jobs.blocking_recv() {
        state.metrics.queue_depth.dec();
        if job.reply.is_closed() {
            continue; // the client is gone: do not spend a pass on it
        }
        if let Some(why) = state.failure() {
            let _ = job.reply.send(Err(ApiError::unavailable(format!("the detector failed: {why}"))));
            continue;
        }
        if let Some(d) = delay {
            std::thread::sleep(d);
        }
        let start = Instant::now();
        let result = pollster::block_on(detector.detect(file, &job.pixels));
        state.metrics.pass_seconds.observe(start.elapsed().as_secs_f64());
        if let Some(note) = detector.take_switch() {
            tracing::warn!("{note}");
        }
        let reply = result.map_err(|e| {
            let e = anyhow::Error::from(e);
            let message = format!("{e:#}");
            if gpu_fault(&e) {
                // --backend gpu: every later pass would fail the same way; stop being ready.
                state.fail(message.clone());
                tracing::error!(error = %message, "the GPU failed; the server is no longer ready");
            }
            ApiError::internal(message)
        });
        let _ = job.reply.send(reply);
    }
}
