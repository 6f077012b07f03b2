//! `tokenclip serve` on loopback with the tiny model: every endpoint, concurrent clients whose
//! results equal `detect`'s bit for bit (v2 JSON, v2 binary, raw pixels and `/detect`), 429 on
//! overload, waiting requests batched into one pass (same answers), SIGTERM with requests in
//! flight, and bad requests answered with JSON 4xx while the
//! server keeps serving.

mod common;

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use common::cli::{images, run, stderr, tiny_model};
use common::clip::scratch;
use common::serve::Server;
use serde_json::{json, Value};
use tokenclip::io::npy::read_npy_f32;

/// What `detect --save-maps` wrote for each image: score and map (at the image's size).
fn detect_reference(model: &Path, imgs: &[std::path::PathBuf], out: &Path) -> Vec<(f32, Vec<f32>)> {
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
        vec![&"--backend", &"cpu", &"detect", &"--model", &model, &"--save-maps", &"--out", &out];
    for i in imgs {
        args.push(i);
    }
    let o = run(&args, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let scores: Value = serde_json::from_slice(&std::fs::read(out.join("scores.json")).unwrap()).unwrap();
    let rows = scores["images"].as_array().unwrap();
    assert_eq!(rows.len(), imgs.len());
    rows.iter()
        .map(|r| {
            let map = read_npy_f32(&std::fs::read(out.join(r["map"].as_str().unwrap())).unwrap()).unwrap().0;
            (r["score"].as_f64().unwrap() as f32, map)
        })
        .collect()
}

fn infer_json(file: &[u8]) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(file);
    serde_json::to_vec(
        &json!({"id": "q", "inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [b64]}]}),
    )
    .unwrap()
}

fn outputs(v: &Value) -> (f32, Vec<f32>, Vec<u64>) {
    let o = v["outputs"].as_array().unwrap();
    assert_eq!((o[0]["name"].as_str(), o[1]["name"].as_str()), (Some("score"), Some("map")));
    let map = o[1]["data"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
    let shape = o[1]["shape"].as_array().unwrap().iter().map(|x| x.as_u64().unwrap()).collect();
    (o[0]["data"][0].as_f64().unwrap() as f32, map, shape)
}

/// The binary extension: a JSON header asking for a binary map, the image as length-prefixed BYTES.
fn infer_binary(server: &Server, file: &[u8]) -> (f32, Vec<f32>) {
    let header = serde_json::to_vec(&json!({
        "inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": file.len() + 4}}],
        "outputs": [{"name": "score"}, {"name": "map", "parameters": {"binary_data": true}}]
    }))
    .unwrap();
    let mut body = header.clone();
    body.extend((file.len() as u32).to_le_bytes());
    body.extend(file);
    let n = header.len().to_string();
    let r = server.post("/v2/models/tokenclip/infer", &[("Inference-Header-Content-Length", &n)], &body);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let json_len: usize = r.header("inference-header-content-length").unwrap().parse().unwrap();
    let v: Value = serde_json::from_slice(&r.body[..json_len]).unwrap();
    let map = r.body[json_len..].chunks(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
    (v["outputs"][0]["data"][0].as_f64().unwrap() as f32, map)
}

/// One client: image `i` through every request form, each result equal to `detect`'s.
fn every_form_equals_detect(server: &Server, dir: &Path, i: usize, path: &Path, score: f32, map: &[f32]) {
    let file = std::fs::read(path).unwrap();
    let r = server.post("/v2/models/tokenclip/infer", &[("content-type", "application/json")], &infer_json(&file));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    assert_eq!(v["id"], "q");
    assert_eq!(v["model_name"], "tokenclip");
    let (s_json, m_json, shape) = outputs(&v);
    let img = image::open(path).unwrap().to_rgb8();
    assert_eq!(shape, [u64::from(img.height()), u64::from(img.width())]);
    assert_eq!((s_json.to_bits(), m_json.as_slice()), (score.to_bits(), map), "image {i}: v2 JSON");
    let (s_bin, m_bin) = infer_binary(server, &file);
    assert_eq!((s_bin, m_bin.as_slice()), (score, map), "image {i}: v2 binary");

    let pixels = serde_json::to_vec(&json!({"inputs": [{"name": "pixels", "datatype": "UINT8",
        "shape": [img.height(), img.width(), 3], "data": img.as_raw()}]}))
    .unwrap();
    let r = server.post("/v2/models/tokenclip/infer", &[], &pixels);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let (s_px, m_px, _) = outputs(&r.json());
    assert_eq!((s_px, m_px.as_slice()), (score, map), "image {i}: UINT8 pixels");

    let r = server.post("/detect", &[], &file);
    let v = r.json();
    assert_eq!(v["score"].as_f64().unwrap() as f32, score);
    assert_eq!(v["flagged"], json!(score >= 2.0));
    let r = server.post("/detect?overlay=png&threshold=0.1", &[], &file);
    assert_eq!((r.status, r.header("content-type")), (200, Some("image/png")));
    let overlay = std::fs::read(dir.join("detect").join(format!("img{i:04}.overlay.png"))).unwrap();
    assert_eq!(
        image::load_from_memory(&r.body).unwrap().to_rgb8().dimensions(),
        image::load_from_memory(&overlay).unwrap().to_rgb8().dimensions()
    );
}

/// Six clients at once, each its image through every request form.
fn concurrent_clients_equal_detect(server: &Server, dir: &Path, imgs: &[std::path::PathBuf], want: &[(f32, Vec<f32>)]) {
    std::thread::scope(|s| {
        for (i, (path, (score, map))) in imgs.iter().zip(want).enumerate() {
            s.spawn(move || every_form_equals_detect(server, dir, i, path, *score, map));
        }
    });
}

/// The `count` and `sum` of a Prometheus histogram in the `/metrics` text.
fn histogram(metrics: &str, name: &str) -> (f64, f64) {
    let value = |suffix: &str| {
        let key = format!("{name}_{suffix} ");
        let line = metrics.lines().find(|l| l.starts_with(&key)).unwrap_or_else(|| panic!("no {key} in {metrics}"));
        line[key.len()..].trim().parse::<f64>().unwrap()
    };
    (value("count"), value("sum"))
}

#[test]
fn every_endpoint_answers_and_concurrent_results_equal_detect() {
    let dir = scratch("serve_endpoints");
    let model = tiny_model(&dir);
    let imgs = images(&dir.join("in"), 6);
    let want = detect_reference(&model, &imgs, &dir.join("detect"));
    let server = Server::start(&model, &["--threshold", "2.0"], &[]);

    assert_eq!(server.get("/v2/health/live").json(), json!({"live": true}));
    assert_eq!(server.get("/v2/health/ready").json(), json!({"ready": true}));
    assert_eq!(server.get("/v2/models/tokenclip/ready").status, 200);
    assert_eq!(server.get("/v2").json()["extensions"], json!(["binary_tensor_data"]));
    let meta = server.get("/v2/models/tokenclip").json();
    assert_eq!(meta["outputs"][1]["name"], "map");
    assert_eq!(meta["parameters"]["input_size"], 64);

    concurrent_clients_equal_detect(&server, &dir, &imgs, &want);
    let metrics = String::from_utf8(server.get("/metrics").body).unwrap();
    assert!(metrics.contains("tokenclip_images_total 30"), "{metrics}");
    for name in
        ["tokenclip_request_duration_seconds_bucket", "tokenclip_queue_depth", "tokenclip_pass_duration_seconds"]
    {
        assert!(metrics.contains(name), "{name} missing from {metrics}");
    }
    // The CPU's default batch size is 1: one image per pass.
    let (passes, images) = histogram(&metrics, "tokenclip_batch_size");
    assert_eq!(passes, images, "the CPU batched by default: {metrics}");
}

/// With `--max-batch 4` and each pass held open, waiting requests run together in batched
/// passes, and every answer is still `detect`'s bit for bit.
#[test]
fn waiting_requests_run_as_batches_with_detects_results() {
    let dir = scratch("serve_batches");
    let model = tiny_model(&dir);
    let imgs = images(&dir.join("in"), 6);
    let want = detect_reference(&model, &imgs, &dir.join("detect"));
    let server = Server::start(&model, &["--threshold", "2.0", "--max-batch", "4"], &[(DELAY, "100")]);
    concurrent_clients_equal_detect(&server, &dir, &imgs, &want);
    let metrics = String::from_utf8(server.get("/metrics").body).unwrap();
    let (passes, images) = histogram(&metrics, "tokenclip_batch_size");
    assert_eq!(images, 30.0, "{metrics}");
    assert!(passes < images, "no pass held more than one image: {metrics}");
    assert!(metrics.contains(r#"tokenclip_batch_size_bucket{le="4.0"} "#), "{metrics}");
    let over_four = metrics.lines().find(|l| l.starts_with(r#"tokenclip_batch_size_bucket{le="4.0"} "#)).unwrap();
    assert!(over_four.ends_with(&format!(" {passes}")), "a pass held more than 4 images: {over_four}");
    let bad = run(&[&"serve", &"--model", &model, &"--max-batch", &"0"], &[]);
    assert!(!bad.status.success() && stderr(&bad).contains("--max-batch must be at least 1"), "{}", stderr(&bad));
}

/// The test-only hook that holds each pass open.
const DELAY: &str = "TOKENCLIP_TEST_SERVE_DELAY_MS";

#[test]
fn overload_gets_429_and_the_server_keeps_serving() {
    let dir = scratch("serve_overload");
    let model = tiny_model(&dir);
    let file = std::fs::read(&images(&dir.join("in"), 1)[0]).unwrap();
    let server = Server::start(&model, &["--queue", "1"], &[(DELAY, "400")]);
    let replies: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6).map(|_| s.spawn(|| server.post("/detect", &[], &file))).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let busy: Vec<_> = replies.iter().filter(|r| r.status == 429).collect();
    assert_eq!(ok + busy.len(), 6, "only 200 and 429 expected");
    assert!(ok >= 2 && !busy.is_empty(), "{ok} answered, {} refused", busy.len());
    assert_eq!(busy[0].header("retry-after"), Some("1"));
    assert!(busy[0].json()["error"].as_str().unwrap().contains("queue is full"));
    assert_eq!(server.post("/detect", &[], &file).status, 200);
}

#[test]
fn sigterm_finishes_the_requests_in_flight() {
    let dir = scratch("serve_sigterm");
    let model = tiny_model(&dir);
    let file = std::fs::read(&images(&dir.join("in"), 1)[0]).unwrap();
    let server = Server::start(&model, &[], &[(DELAY, "500")]);
    let replies: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3).map(|_| s.spawn(|| server.post("/detect", &[], &file))).collect();
        std::thread::sleep(Duration::from_millis(250));
        server.terminate();
        std::thread::sleep(Duration::from_millis(100));
        // Draining: new requests are refused with 503, readiness is off.
        let late = server.post("/detect", &[], &file);
        assert_eq!(late.status, 503, "{}", String::from_utf8_lossy(&late.body));
        assert_eq!(server.get("/v2/health/ready").status, 400);
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in &replies {
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    let (status, err) = server.wait(Duration::from_secs(20));
    assert!(status.success(), "{status}: {err}");
    assert!(err.contains("shutting down"), "{err}");
}

#[test]
fn bad_requests_get_json_errors_and_the_server_keeps_serving() {
    let dir = scratch("serve_bad");
    let model = tiny_model(&dir);
    let file = std::fs::read(&images(&dir.join("in"), 1)[0]).unwrap();
    let server = Server::start(&model, &["--max-body-mib", "1", "--log-format", "json"], &[]);
    let error = |r: common::serve::Reply, status: u16, says: &str| {
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
        let msg = r.json()["error"].as_str().unwrap().to_string();
        assert!(msg.contains(says), "{msg:?} should say {says:?}");
    };
    error(server.post("/detect", &[], b"not an image"), 400, "the image");
    // 16 MiB, past what loopback buffers hold: the client is still writing when the limit is
    // crossed, and must still get the 413 rather than a broken pipe.
    error(server.post("/detect", &[], &vec![0u8; 16 << 20]), 413, "over the limit");
    error(server.post("/detect", &[], &common::png_with_size(20000, 8)), 413, "20000");
    error(server.post("/detect?overlay=jpg", &[], &file), 400, "overlay=png");
    error(server.post("/detect?treshold=1", &[], &file), 400, "treshold");
    error(server.post("/v2/models/other/infer", &[], &infer_json(&file)), 404, "no model \"other\"");
    error(server.get("/v2/models/other"), 404, "no model");
    let wrong_shape = json!({"inputs": [{"name": "p", "datatype": "UINT8", "shape": [2, 2], "data": [1, 2, 3, 4]}]});
    error(server.post("/v2/models/tokenclip/infer", &[], wrong_shape.to_string().as_bytes()), 400, "[H, W, 3]");
    let wrong_type = json!({"inputs": [{"name": "p", "datatype": "FP32", "shape": [1], "data": [1.0]}]});
    error(server.post("/v2/models/tokenclip/infer", &[], wrong_type.to_string().as_bytes()), 400, "FP32");
    error(server.post("/v2/models/tokenclip/infer", &[], b"{"), 400, "v2 infer request");

    // A client that goes away mid-upload.
    let addr = server.url.strip_prefix("http://").unwrap();
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"POST /detect HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n\x89PNG").unwrap();
    drop(s);

    assert_eq!(server.post("/detect", &[], &file).status, 200);
    let metrics = String::from_utf8(server.get("/metrics").body).unwrap();
    assert!(metrics.contains(r#"tokenclip_errors_total{kind="bad_request"}"#), "{metrics}");
    drop(server);
}

#[test]
fn a_model_that_cannot_be_read_fails_at_start() {
    let dir = scratch("serve_no_model");
    let o = run(&[&"serve", &"--model", &dir.join("missing.safetensors"), &"--port", &"0"], &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("missing.safetensors"), "{}", stderr(&o));
    let o = run(&[&"serve", &"--queue", &"0"], &[]);
    assert!(stderr(&o).contains("--queue must be at least 1"), "{}", stderr(&o));
}
