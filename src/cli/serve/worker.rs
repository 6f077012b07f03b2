//! The detector thread: loads the model once, then takes the jobs waiting in the queue, in
//! arrival order, up to the batch size at a time, runs them as one batched pass and answers
//! each on its own channel.
//!
//! A batch is only what is already waiting: the worker never holds a job back for others to
//! arrive. Each image's result is its single pass's bit for bit (tests/batch.rs), so batching
//! changes speed, never answers. Its default size is [`DeviceDetector::batch_size`]'s.

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

/// Loads the model on the backend `g` asks for, marks the server ready, and serves jobs in
/// batches of up to `max_batch` (`None`: the backend's default) until every sender is gone. A
/// failed load is recorded in `state` and stops the server.
pub fn run(g: &Global, file: &ModelFile, max_batch: Option<usize>, mut jobs: mpsc::Receiver<Job>, state: &AppState) {
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
    let mut batch_size = detector.batch_size(max_batch);
    if max_batch.is_some_and(|m| m > batch_size) {
        tracing::warn!(requested = max_batch, batch_size, "--max-batch is capped by the GPU's tensor size limit");
    }
    tracing::info!(backend = %detector.describe(), model = %file.path(), batch_size, "model loaded");
    state.ready.store(true, Ordering::SeqCst);
    let delay = std::env::var(DELAY_ENV).ok().and_then(|v| v.parse().ok()).map(Duration::from_millis);
    while let Some(first) = jobs.blocking_recv() {
        let mut batch = Vec::with_capacity(batch_size);
        take(state, first, &mut batch);
        while batch.len() < batch_size {
            match jobs.try_recv() {
                Ok(job) => take(state, job, &mut batch),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        if let Some(d) = delay {
            std::thread::sleep(d);
        }
        let start = Instant::now();
        let images: Vec<&[f32]> = batch.iter().map(|j| j.pixels.as_slice()).collect();
        let result = pollster::block_on(detector.detect_batch(file, &images));
        state.metrics.pass_seconds.observe(start.elapsed().as_secs_f64());
        state.metrics.batch_size.observe(batch.len() as f64);
        if let Some(note) = detector.take_switch() {
            tracing::warn!("{note}");
            // Now on the CPU: its own batch size from here on.
            batch_size = detector.batch_size(max_batch);
        }
        match result {
            Ok(detections) => {
                for (job, d) in batch.into_iter().zip(detections) {
                    let _ = job.reply.send(Ok(d));
                }
            }
            Err(e) => {
                let e = anyhow::Error::from(e);
                let message = format!("{e:#}");
                if gpu_fault(&e) {
                    // --backend gpu: every later pass would fail the same way; stop being ready.
                    state.fail(message.clone());
                    tracing::error!(error = %message, "the GPU failed; the server is no longer ready");
                }
                for job in batch {
                    let _ = job.reply.send(Err(ApiError::internal(message.clone())));
                }
            }
        }
    }
}

/// Adds `job` to `batch` unless its client is gone (no pass is spent on it) or the detector has
/// failed (it is answered 503 at once).
fn take(state: &AppState, job: Job, batch: &mut Vec<Job>) {
    state.metrics.queue_depth.dec();
    if job.reply.is_closed() {
        return;
    }
    if let Some(why) = state.failure() {
        let _ = job.reply.send(Err(ApiError::unavailable(format!("the detector failed: {why}"))));
        return;
    }
    batch.push(job);
}
