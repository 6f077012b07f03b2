//! The HTTP endpoints: the Open Inference Protocol v2 (health, metadata, infer) and the plain
//! `POST /detect` for people with curl.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tokenclip::io::image::{decode_image, RgbImage};
use tokenclip::io::overlay::resize_map;
use tokenclip::io::preprocess::detection_pixels;
use tokenclip::io::InputError;
use tokenclip::Detection;
use tokio::sync::{mpsc, oneshot};

use super::api_error::ApiError;
use super::state::AppState;
use super::worker::Job;
use tokenclip::serve::oip::{self, ImageInput, RequestError};

type Shared = State<Arc<AppState>>;

/// `GET /v2/health/live`: the process runs and its detector has not failed.
pub async fn live(State(state): Shared) -> Response {
    let live = state.failure().is_none();
    (if live { StatusCode::OK } else { StatusCode::BAD_REQUEST }, Json(json!({ "live": live }))).into_response()
}

/// `GET /v2/health/ready` (and `/v2/models/{name}/ready`): the model is loaded and the server is
/// not draining. Not ready is a 4xx, as the protocol says.
pub async fn ready(State(state): Shared) -> Response {
    let ready = state.accepting().is_ok();
    (if ready { StatusCode::OK } else { StatusCode::BAD_REQUEST }, Json(json!({ "ready": ready }))).into_response()
}

/// `GET /v2/models/{name}/ready`.
pub async fn model_ready(state: Shared, Path(name): Path<String>) -> Response {
    match check_model(&state, &name) {
        Ok(()) => ready(state).await,
        Err(e) => e.into_response(),
    }
}

/// `GET /v2`: the server's metadata.
pub async fn server_metadata() -> Json<Value> {
    Json(json!({ "name": "tokenclip", "version": env!("CARGO_PKG_VERSION"), "extensions": ["binary_tensor_data"] }))
}

/// `GET /v2/models/{name}`: the model's inputs and outputs.
pub async fn model_metadata(State(state): Shared, Path(name): Path<String>) -> Result<Json<Value>, ApiError> {
    check_model(&state, &name)?;
    Ok(Json(json!({
        "name": state.name,
        "versions": ["1"],
        "platform": "tokenclip",
        "inputs": [
            { "name": "image", "datatype": "BYTES", "shape": [1] },
            { "name": "pixels", "datatype": "UINT8", "shape": [-1, -1, 3] },
        ],
        "outputs": [
            { "name": "score", "datatype": "FP32", "shape": [1] },
            { "name": "map", "datatype": "FP32", "shape": [-1, -1] },
        ],
        "parameters": { "input_size": state.config.input_size, "one_input_of": ["image", "pixels"] },
    })))
}

fn check_model(state: &AppState, name: &str) -> Result<(), ApiError> {
    if name == state.name {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("no model {name:?}; this server serves {:?}", state.name)))
    }
}

/// `POST /v2/models/{name}/infer`.
pub async fn infer(State(state): Shared, Path(name): Path<String>, headers: HeaderMap, body: Body) -> Response {
    let result =
        async {
            check_model(&state, &name)?;
            let jobs = state.accepting()?;
            let body = read_body(body, state.limits.body_bytes).await?;
            let json_length =
                match headers.get(oip::HEADER_LENGTH) {
                    None => None,
                    Some(v) => Some(v.to_str().ok().and_then(|s| s.trim().parse().ok()).ok_or_else(|| {
                        ApiError::bad_request(format!("{} must be a byte count", oip::HEADER_LENGTH))
                    })?),
                };
            let input = oip::parse_infer(&body, json_length, state.limits.image.max_side).map_err(request_error)?;
            let (img, d) = detect(&state, jobs, input.image.clone()).await?;
            let (w, h) = (img.width as usize, img.height as usize);
            let built = tokio::task::spawn_blocking(move || {
                let map = resize_map(&d.map, d.size, d.size, w, h).map_err(|e| ApiError::internal(e.to_string()))?;
                Ok::<_, ApiError>(oip::infer_response(&name, &input, d.score, &map, (w, h)))
            });
            let (bytes, json_length) = built.await.map_err(|e| ApiError::internal(e.to_string()))??;
            Ok::<_, ApiError>(match json_length {
                None => ([(header::CONTENT_TYPE, "application/json".to_string())], bytes).into_response(),
                Some(n) => (
                    [
                        (header::CONTENT_TYPE, "application/octet-stream".to_string()),
                        (header::HeaderName::from_static(oip::HEADER_LENGTH), n.to_string()),
                    ],
                    bytes,
                )
                    .into_response(),
            })
        };
    finish(&state, result.await)
}

/// `POST /detect` with the image file as the body: JSON `score`, `max`, `flagged` (against
/// `?threshold=` or `--threshold`); `?overlay=png` returns the overlay PNG instead.
pub async fn plain_detect(State(state): Shared, Query(query): Query<HashMap<String, String>>, body: Body) -> Response {
    let result = async {
        let (overlay, threshold) = detect_query(&query, state.threshold)?;
        let jobs = state.accepting()?;
        let body = read_body(body, state.limits.body_bytes).await?;
        let (img, d) = detect(&state, jobs, ImageInput::Encoded(body.to_vec())).await?;
        let flagged = threshold.map(|t| d.score >= t);
        if !overlay {
            let body = json!({ "score": d.score, "max": d.map_max, "flagged": flagged,
                               "width": img.width, "height": img.height });
            return Ok(Json(body).into_response());
        }
        let (score, max) = (d.score, d.map_max);
        let config = state.config.clone();
        let opacity = state.opacity;
        let png = tokio::task::spawn_blocking(move || {
            crate::cli::detect::overlay_png(&config, &img, &d, opacity, threshold)
                .map_err(|e| ApiError::internal(format!("{e:#}")))
        });
        let png = png.await.map_err(|e| ApiError::internal(e.to_string()))??;
        let headers = [
            (header::CONTENT_TYPE, "image/png".to_string()),
            (header::HeaderName::from_static("tokenclip-score"), score.to_string()),
            (header::HeaderName::from_static("tokenclip-max"), max.to_string()),
        ];
        Ok((headers, png).into_response())
    };
    finish(&state, result.await)
}

fn detect_query(query: &HashMap<String, String>, default: Option<f32>) -> Result<(bool, Option<f32>), ApiError> {
    let mut overlay = false;
    let mut threshold = default;
    for (k, v) in query {
        match k.as_str() {
            "overlay" if v == "png" => overlay = true,
            "overlay" => return Err(ApiError::bad_request(format!("overlay={v} is not supported; use overlay=png"))),
            "threshold" => match v.parse::<f32>() {
                Ok(t) if t.is_finite() => threshold = Some(t),
                _ => return Err(ApiError::bad_request(format!("threshold={v} is not a number"))),
            },
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown query parameter {other:?}; /detect takes overlay=png and threshold"
                )))
            }
        }
    }
    Ok((overlay, threshold))
}

/// Counts the outcome and turns an error into its JSON response.
fn finish(state: &AppState, result: Result<Response, ApiError>) -> Response {
    match result {
        Ok(r) => {
            state.metrics.images.inc();
            r
        }
        Err(e) => {
            state.metrics.errors.get_or_create(&super::metrics::ErrorLabels { kind: e.kind().into() }).inc();
            if e.status.is_server_error() {
                tracing::warn!(status = e.status.as_u16(), error = %e.message, "request failed");
            }
            e.into_response()
        }
    }
}

/// How much of an over-limit body is still read (and dropped) before the 413 is sent: a client
/// that writes its whole body before reading the answer would otherwise see the connection
/// close under it (a broken pipe) instead of the 413.
const DRAIN_BEYOND_LIMIT: usize = 64 << 20;

/// The whole body, or 413 past `limit` bytes, or 400 when the client went away mid-upload.
async fn read_body(mut body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let broken = |e: axum::Error| ApiError::bad_request(format!("the request body could not be read: {e}"));
    let mut data = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(chunk) = frame.map_err(broken)?.into_data() else { continue };
        seen = seen.saturating_add(chunk.len());
        if seen <= limit {
            data.extend_from_slice(&chunk);
        } else if seen > limit.saturating_add(DRAIN_BEYOND_LIMIT) {
            break;
        }
    }
    if seen > limit {
        return Err(ApiError::too_large(format!(
            "the request body is over the limit of {limit} bytes (--max-body-mib)"
        )));
    }
    Ok(Bytes::from(data))
}

/// Decodes and preprocesses `image` off the async threads, queues it for the detector (429 when
/// the queue is full) and waits for the result within the request timeout (504).
async fn detect(
    state: &AppState,
    jobs: mpsc::Sender<Job>,
    image: ImageInput,
) -> Result<(RgbImage, Detection), ApiError> {
    let limits = state.limits.image;
    let size = state.config.input_size as u32;
    let prepared = tokio::task::spawn_blocking(move || {
        let img = match image {
            ImageInput::Encoded(bytes) => decode_image(&bytes, "the image", &limits).map_err(input_error)?,
            ImageInput::Pixels { width, height, rgb } => {
                limits.check(width.into(), height.into(), "the pixels").map_err(input_error)?;
                RgbImage::from_rgb(width, height, rgb)
                    .ok_or_else(|| ApiError::bad_request("the pixels do not match their shape"))?
            }
        };
        let pixels = detection_pixels(&img, size, "the image").map_err(input_error)?;
        Ok::<_, ApiError>((img, pixels))
    });
    let (img, pixels) = prepared.await.map_err(|e| ApiError::internal(e.to_string()))??;
    let (reply, result) = oneshot::channel();
    // Counted before the send: the worker may take the job (and count it out) at once.
    state.metrics.queue_depth.inc();
    let sent = jobs.try_send(Job { pixels, reply });
    if sent.is_err() {
        state.metrics.queue_depth.dec();
    }
    match sent {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(_)) => {
            let message = format!("the queue is full ({} waiting); retry later", state.limits.queue);
            let e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, message);
            return Err(ApiError { retry_after: Some(1), ..e });
        }
        Err(mpsc::error::TrySendError::Closed(_)) => return Err(ApiError::unavailable("the detector has stopped")),
    };
    let timeout = state.limits.timeout;
    let d = match tokio::time::timeout(timeout, result).await {
        Ok(Ok(r)) => r?,
        Ok(Err(_)) => return Err(ApiError::internal("the detector stopped before answering")),
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!("no result within {:.1} s (--timeout)", timeout.as_secs_f64()),
            ))
        }
    };
    Ok((img, d))
}

fn request_error(e: RequestError) -> ApiError {
    match e {
        RequestError::Invalid(m) => ApiError::bad_request(m),
        RequestError::TooLarge(m) => ApiError::too_large(m),
    }
}

fn input_error(e: InputError) -> ApiError {
    match e {
        InputError::TooLarge { .. } => ApiError::too_large(e.to_string()),
        other => ApiError::bad_request(other.to_string()),
    }
}
