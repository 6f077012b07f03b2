//! `tokenclip serve`: one model loaded once behind the Open Inference Protocol v2 REST API
//! (what KServe, Triton and MLServer speak) and a plain `POST /detect`; see docs/SERVE.md.
//!
//! axum on tokio, as the Rust model servers (text-embeddings-inference) are built: the async
//! side parses, decodes and answers; one detector thread owns the model and runs the passes
//! from a bounded queue (429 when full). SIGTERM drains: readiness turns false, new requests get
//! 503, those in flight finish, then the process exits 0.

mod api_error;
mod metrics;
mod routes;
mod state;
mod worker;

use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::routing::{get, post};
use axum::Router;
use clap::{Args, ValueEnum};
use tokenclip::clip::model_file::ModelFile;
use tokenclip::io::image::ImageLimits;

use self::state::{AppState, Limits};
use super::Global;

/// The log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// One readable line per event.
    Text,
    /// One JSON object per line (for log collectors).
    Json,
}

/// `tokenclip serve` arguments.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The model: a name (`tokenclip models`), a model file, or a URL of one.
    #[arg(long, default_value = tokenclip::hub::DEFAULT_MODEL)]
    model: String,
    /// The address to listen on (0.0.0.0 for every interface, as in a container).
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// The port (0: any free one; the address is printed).
    #[arg(long, default_value_t = 8080)]
    port: u16,
    /// The model's name in `/v2/models/{name}`.
    #[arg(long, default_value = "tokenclip")]
    name: String,
    /// Requests that may wait for the detector; more get 429 with Retry-After.
    #[arg(long, default_value_t = 16)]
    queue: usize,
    /// The largest request body, in MiB.
    #[arg(long, default_value_t = 32)]
    max_body_mib: usize,
    /// Seconds a request may wait for its result (queue and pass) before a 504.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
    /// `/detect` flags images whose score is at least this (a request's `?threshold=` wins).
    #[arg(long)]
    threshold: Option<f32>,
    /// Heat-map opacity of `/detect?overlay=png`, 0–1.
    #[arg(long, default_value_t = 0.5)]
    opacity: f32,
    /// Most waiting requests run as one batched pass (default: 8 on a hardware GPU, 1 on the CPU
    /// and software GPUs, where batching gains too little; capped by the GPU's tensor size limit).
    #[arg(long)]
    max_batch: Option<usize>,
    /// Log lines as text or JSON (on standard error).
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
}

/// Serves until SIGTERM or Ctrl-C.
pub fn run(g: &Global, args: &ServeArgs) -> anyhow::Result<()> {
    if args.queue == 0 {
        anyhow::bail!("--queue must be at least 1");
    }
    if args.max_batch == Some(0) {
        anyhow::bail!("--max-batch must be at least 1");
    }
    if !(args.timeout > 0.0 && args.timeout.is_finite()) {
        anyhow::bail!("--timeout must be a positive number of seconds, got {}", args.timeout);
    }
    if !(0.0..=1.0).contains(&args.opacity) {
        anyhow::bail!("--opacity must be within 0 and 1, got {}", args.opacity);
    }
    let body_bytes = args.max_body_mib.checked_mul(1 << 20).context("--max-body-mib is too large")?;
    init_logs(args.log_format);
    let file = ModelFile::open(&super::models::model_path(g, &args.model)?)?;
    let (jobs, queue) = tokio::sync::mpsc::channel(args.queue);
    let state = Arc::new(AppState {
        name: args.name.clone(),
        config: file.config.clone(),
        limits: Limits {
            body_bytes,
            timeout: Duration::from_secs_f64(args.timeout),
            image: ImageLimits::default(),
            queue: args.queue,
        },
        threshold: args.threshold,
        opacity: args.opacity,
        jobs: Mutex::new(Some(jobs)),
        ready: AtomicBool::new(false),
        draining: AtomicBool::new(false),
        failed: Mutex::new(None),
        in_flight: AtomicUsize::new(0),
        metrics: metrics::Metrics::default(),
        stop: tokio::sync::Notify::new(),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind((args.host.as_str(), args.port)))
        .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
    let addr = listener.local_addr()?;
    println!("listening on http://{addr}");
    std::io::stdout().flush()?;
    let app = router(state.clone());
    std::thread::scope(|s| {
        let worker_state = state.clone();
        let file = &file;
        let max_batch = args.max_batch;
        s.spawn(move || worker::run(g, file, max_batch, queue, &worker_state));
        let served =
            runtime.block_on(async { axum::serve(listener, app).with_graceful_shutdown(drain(state.clone())).await });
        // The detector thread ends once the queue's last sender is gone.
        if let Ok(mut jobs) = state.jobs.lock() {
            jobs.take();
        }
        served.context("the server failed")
    })?;
    if !state.ready.load(Ordering::SeqCst) {
        if let Some(why) = state.failure() {
            anyhow::bail!("the model could not be loaded: {why}");
        }
    }
    tracing::info!("stopped");
    Ok(())
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v2", get(routes::server_metadata))
        .route("/v2/health/live", get(routes::live))
        .route("/v2/health/ready", get(routes::ready))
        .route("/v2/models/{name}", get(routes::model_metadata))
        .route("/v2/models/{name}/ready", get(routes::model_ready))
        .route("/v2/models/{name}/infer", post(routes::infer))
        .route("/detect", post(routes::plain_detect))
        .route("/metrics", get(metrics::metrics))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), metrics::observe))
        // Bodies are read with their own limit (a JSON 413); lift axum's default 2 MB one.
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

/// Resolves on SIGTERM, Ctrl-C or a failed model load, after the requests in flight finished
/// (at most the request timeout plus five seconds).
async fn drain(state: Arc<AppState>) {
    tokio::select! {
        () = terminate() => tracing::info!("shutting down: finishing the requests in flight"),
        () = state.stop.notified() => {}
    }
    state.draining.store(true, Ordering::SeqCst);
    let deadline = Instant::now() + state.limits.timeout + Duration::from_secs(5);
    while state.in_flight.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn terminate() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn init_logs(format: LogFormat) {
    let builder = tracing_subscriber::fmt().with_writer(std::io::stderr).with_target(false);
    // A second initialisation (never in the binary) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
