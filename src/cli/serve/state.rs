//! What every request handler shares: the model's configuration, the queue to the detector, the
//! server's life cycle (loading, ready, draining, failed) and its limits.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokenclip::clip::config::ModelConfig;
use tokenclip::io::image::ImageLimits;
use tokio::sync::mpsc;

use super::api_error::ApiError;
use super::metrics::Metrics;
use super::worker::Job;

/// The limits a request runs under.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest request body, in bytes.
    pub body_bytes: usize,
    /// The longest a request may wait for its result (queue and pass).
    pub timeout: Duration,
    /// Image size limits, checked before any pixel is decoded.
    pub image: ImageLimits,
    /// Requests that may wait for the detector.
    pub queue: usize,
}

/// The server's shared state.
pub struct AppState {
    /// The name clients use in `/v2/models/{name}`.
    pub name: String,
    /// The model's configuration.
    pub config: ModelConfig,
    /// The limits.
    pub limits: Limits,
    /// `/detect`'s default threshold (`--threshold`).
    pub threshold: Option<f32>,
    /// Overlay opacity.
    pub opacity: f32,
    /// The queue to the detector thread; taken at shutdown so the thread ends.
    pub jobs: Mutex<Option<mpsc::Sender<Job>>>,
    /// The model is loaded and the detector takes jobs.
    pub ready: AtomicBool,
    /// SIGTERM came: new requests get 503 while those in flight finish.
    pub draining: AtomicBool,
    /// Why the detector can no longer run (a GPU fault under `--backend gpu`, a failed load).
    pub failed: Mutex<Option<String>>,
    /// Routed requests being handled.
    pub in_flight: AtomicUsize,
    /// The Prometheus metrics.
    pub metrics: Metrics,
    /// Wakes the shutdown when the detector cannot start.
    pub stop: tokio::sync::Notify,
}

impl AppState {
    /// The queue's sender if the server takes detection requests now, else why not (503).
    pub fn accepting(&self) -> Result<mpsc::Sender<Job>, ApiError> {
        if self.draining.load(Ordering::SeqCst) {
            return Err(ApiError::unavailable("the server is shutting down"));
        }
        if let Some(why) = self.failure() {
            return Err(ApiError::unavailable(format!("the detector failed: {why}")));
        }
        if !self.ready.load(Ordering::SeqCst) {
            return Err(ApiError::unavailable("the model is still loading"));
        }
        let jobs = self.jobs.lock().map_err(|_| ApiError::internal("the job queue is poisoned"))?;
        jobs.clone().ok_or_else(|| ApiError::unavailable("the server is shutting down"))
    }

    /// Why the detector failed, if it did.
    pub fn failure(&self) -> Option<String> {
        self.failed.lock().ok().and_then(|f| f.clone())
    }

    /// Records that the detector cannot run any more.
    pub fn fail(&self, why: String) {
        if let Ok(mut f) = self.failed.lock() {
            f.get_or_insert(why);
        }
    }
}
