//! Prometheus metrics (`GET /metrics`, OpenMetrics text) and the middleware that times and logs
//! every request.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::state::AppState;

/// The labels of per-route metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The route pattern, e.g. `/v2/models/{name}/infer`.
    pub route: String,
    /// The HTTP status code.
    pub code: String,
}

/// The label of the error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// What kind of error (`ApiError::kind`).
    pub kind: String,
}

fn latency_buckets() -> Histogram {
    // 1 ms to about 33 s: tiny models on a GPU to large ones on a slow CPU.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    /// Request latency by route and status.
    pub latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    /// Time of the detection pass itself (in the worker; one pass may hold a batch).
    pub pass_seconds: Histogram,
    /// Images per pass (waiting requests batched together).
    pub batch_size: Histogram,
    /// Requests waiting in the queue.
    pub queue_depth: Gauge,
    /// Images detected.
    pub images: Counter,
    /// Failed requests by kind.
    pub errors: Family<ErrorLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tokenclip");
        let latency = Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_buckets);
        registry.register("request_duration_seconds", "HTTP request latency", latency.clone());
        let pass_seconds = latency_buckets();
        registry.register("pass_duration_seconds", "Detection pass time (one batch)", pass_seconds.clone());
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 7));
        registry.register("batch_size", "Images per detection pass", batch_size.clone());
        let queue_depth = Gauge::default();
        registry.register("queue_depth", "Requests waiting for the detector", queue_depth.clone());
        let images = Counter::default();
        registry.register("images", "Images detected", images.clone());
        let errors = Family::<ErrorLabels, Counter>::default();
        registry.register("errors", "Failed requests by kind", errors.clone());
        Metrics { registry, latency, pass_seconds, batch_size, queue_depth, images, errors }
    }
}

impl Metrics {
    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// `GET /metrics`.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], state.metrics.encode()).into_response()
}

/// Counts a request as in flight while it runs (so a graceful shutdown waits for it), even if
/// its handler panics.
struct InFlight<'a>(&'a AppState);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Times, counts and logs (one structured line) every routed request.
pub async fn observe(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let start = Instant::now();
    state.in_flight.fetch_add(1, Ordering::SeqCst);
    let guard = InFlight(&state);
    let response = next.run(req).await;
    drop(guard);
    let seconds = start.elapsed().as_secs_f64();
    let code = response.status().as_u16();
    state.metrics.latency.get_or_create(&RouteLabels { route, code: code.to_string() }).observe(seconds);
    tracing::info!(%method, %path, status = code, latency_ms = seconds * 1e3, "request");
    response
}
