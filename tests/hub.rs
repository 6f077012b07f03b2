//! Named models fetched on first use, against a fake hub, CDN and GitHub on loopback
//! (tests/common/fake_hub.rs; CI has no network), serving the tiny random CLIP in open_clip's
//! safetensors format and an AnomalyCLIP-layout `.pth` from tests/fixtures/detect_tiny:
//! - `detect --model NAME` equals `import` + `detect` on the same files, and later runs need no
//!   network; the hub files sit in the Hugging Face cache layout, and an open_clip cache is used;
//! - downloads survive cut connections (same bytes), restart when a server ignores `Range`,
//!   refuse and delete a wrong hash, happen once when two processes fetch at once, go through a
//!   proxy from the environment, and send `HF_TOKEN` to the hub only;
//! - bad input: 404, no network, offline with an empty cache, an unknown name, a malformed
//!   registry, HTML instead of a model, a cache that cannot be written, a full disk.

mod common;

#[path = "hub/env.rs"]
mod env;

#[path = "hub/downloads.rs"]
mod downloads;

#[path = "hub/errors.rs"]
mod errors;

use common::clip::scratch;
use env::{stderr, HubEnv};
use tokenclip::io::npy::read_npy_f32;

#[test]
fn detect_by_name_equals_import_then_detect_and_reruns_offline() {
    let dir = scratch("hub-detect");
    let e = HubEnv::new(&dir);
    let images = common::clip::shared_data().join("saa-demo/carpet.png");
    let by_name = dir.join("by-name");
    let run = e.run(&[
        "detect",
        "--model",
        "tiny",
        "--save-maps",
        "--out",
        by_name.to_str().unwrap(),
        images.to_str().unwrap(),
    ]);
    assert!(run.status.success(), "{}", stderr(&run));
    let log = stderr(&run);
    assert!(log.contains("is not converted yet") && log.contains("converting tiny"), "{log}");

    // The same files through `import` + `detect`.
    let model = dir.join("imported.safetensors");
    e.import_tiny(&model);
    let by_file = dir.join("by-file");
    let run2 = e.run(&[
        "detect",
        "--model",
        model.to_str().unwrap(),
        "--save-maps",
        "--out",
        by_file.to_str().unwrap(),
        images.to_str().unwrap(),
    ]);
    assert!(run2.status.success(), "{}", stderr(&run2));
    let map = |d: &std::path::Path| read_npy_f32(&std::fs::read(d.join("carpet.map.npy")).unwrap()).unwrap();
    assert_eq!(map(&by_name), map(&by_file), "maps by name and by import differ");
    let score = |d: &std::path::Path| {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(d.join("scores.json")).unwrap()).unwrap();
        v["images"][0]["score"].as_f64().unwrap()
    };
    assert_eq!(score(&by_name), score(&by_file));

    // The converted file holds exactly the tensors import writes.
    let converted = e.converted("tiny");
    let (a, b) = (std::fs::read(&converted).unwrap(), std::fs::read(&model).unwrap());
    let (ta, tb) =
        (safetensors::SafeTensors::deserialize(&a).unwrap(), safetensors::SafeTensors::deserialize(&b).unwrap());
    let mut names = ta.names();
    names.sort();
    let mut names_b = tb.names();
    names_b.sort();
    assert_eq!(names, names_b);
    for n in names {
        assert_eq!(ta.tensor(n).unwrap().data(), tb.tensor(n).unwrap().data(), "tensor {n}");
    }

    // The hub file is in the Hugging Face layout: blob by sha256, snapshot symlink, no partials.
    let repo = e.hf_home.join("hub/models--test--tiny-clip");
    let blob = repo.join("blobs").join(&e.clip_sha);
    assert_eq!(std::fs::read(&blob).unwrap(), *e.clip_bytes);
    let snap = repo.join("snapshots").join(env::CLIP_COMMIT).join("open_clip_model.safetensors");
    assert_eq!(std::fs::read_link(&snap).unwrap(), std::path::Path::new("../../blobs").join(&e.clip_sha));
    env::assert_no_partials(&e.hf_home);
    env::assert_no_partials(&e.cache);

    // Later runs start from the cache: no request at all, even with the servers gone.
    e.clear_seen();
    let again = dir.join("again");
    let run3 = e.run_with(
        &["detect", "--model", "tiny", "--out", again.to_str().unwrap(), images.to_str().unwrap()],
        &[("HF_ENDPOINT", "http://127.0.0.1:9"), ("TOKENCLIP_GITHUB_ENDPOINT", "http://127.0.0.1:9")],
    );
    assert!(run3.status.success(), "{}", stderr(&run3));
    assert_eq!(e.requests(), 0);

    // With the converted file gone, --offline converts again from the downloads in the cache.
    std::fs::remove_file(&converted).unwrap();
    let run4 = e.run(&["--offline", "fetch", "tiny"]);
    assert!(run4.status.success(), "{}", stderr(&run4));
    assert_eq!(e.requests(), 0);
    assert!(converted.exists());
}

#[test]
fn an_open_clip_cache_is_used_without_downloading() {
    let dir = scratch("hub-openclip-cache");
    let e = HubEnv::new(&dir);
    // What huggingface_hub leaves after open_clip loaded the weights.
    let repo = e.hf_home.join("hub/models--test--tiny-clip");
    std::fs::create_dir_all(repo.join("blobs")).unwrap();
    std::fs::write(repo.join("blobs").join(&e.clip_sha), &*e.clip_bytes).unwrap();
    let snap = repo.join("snapshots").join(env::CLIP_COMMIT);
    std::fs::create_dir_all(&snap).unwrap();
    std::os::unix::fs::symlink(
        std::path::Path::new("../../blobs").join(&e.clip_sha),
        snap.join("open_clip_model.safetensors"),
    )
    .unwrap();
    let run = e.run(&["fetch", "tiny"]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(e.hub.hub.seen().len() + e.hub.cdn.seen().len(), 0, "the hub was asked although the cache has the file");
    assert_eq!(e.gh.count("GET", "/test/anomalyclip/"), 1);
}

#[test]
fn models_lists_names_sources_and_cache_state() {
    let dir = scratch("hub-models");
    let e = HubEnv::new(&dir);
    let out = e.run(&["models"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "anomalyclip (default)",
        "clip-b16-ensemble",
        "tiny",
        "test/tiny-clip",
        "downloaded and converted on first use",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    let json = e.run(&["models", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let a = v.as_array().unwrap().iter().find(|m| m["name"] == "anomalyclip").unwrap();
    assert_eq!(a["download_bytes"], 1_711_828_444u64 + 22_631_975);
}
