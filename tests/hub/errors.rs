//! Bad input around named models: each a clear message, exit status 1, nothing half-written.

use crate::common::clip::scratch;
use crate::env::{assert_no_partials, files, stderr, HubEnv};

fn fails(o: &std::process::Output) -> String {
    assert_eq!(o.status.code(), Some(1), "expected exit 1; stderr: {}", stderr(o));
    stderr(o)
}

#[test]
fn no_network_names_the_url_the_cache_and_fetch() {
    let dir = scratch("hub-nonet");
    let e = HubEnv::new(&dir);
    let msg = fails(&e.run_with(&["fetch", "tiny"], &[("HF_ENDPOINT", "http://127.0.0.1:9")]));
    assert!(msg.contains("http://127.0.0.1:9/test/tiny-clip/resolve/"), "{msg}");
    assert!(msg.contains(&e.hf_home.join("hub").display().to_string()), "{msg}");
    assert!(msg.contains("tokenclip fetch tiny") && msg.contains("--offline"), "{msg}");
    assert!(files(&e.cache.join("models")).iter().all(|p| p.extension().is_some_and(|x| x == "lock")));
    assert_no_partials(&e.hf_home);
    // A connection that breaks for good keeps the partial file for the next run, under its
    // partial name only.
    let msg = fails(&e.run_with(&["fetch", "tiny"], &[("TOKENCLIP_GITHUB_ENDPOINT", "http://127.0.0.1:9")]));
    assert!(msg.contains("127.0.0.1:9/test/anomalyclip/") && msg.contains("gave up"), "{msg}");
}

#[test]
fn offline_with_an_empty_cache_says_what_to_do() {
    let dir = scratch("hub-offline");
    let e = HubEnv::new(&dir);
    for args in [&["--offline", "fetch", "tiny"][..], &["fetch", "tiny"][..]] {
        let msg = fails(&e.run_with(args, &[("HF_HUB_OFFLINE", "1")]));
        assert!(msg.contains("not in the cache") && msg.contains("tokenclip fetch tiny"), "{msg}");
        assert!(msg.contains("--offline") || msg.contains("HF_HUB_OFFLINE=1"), "{msg}");
    }
    assert_eq!(e.requests(), 0, "an offline run touched the network");
}

#[test]
fn not_found_unknown_names_and_bad_registries() {
    let dir = scratch("hub-names");
    let e = HubEnv::new(&dir);
    let msg = fails(&e.run(&["fetch", "missing"]));
    assert!(msg.contains("nope.safetensors") && msg.contains("not found (HTTP 404, EntryNotFound)"), "{msg}");
    let msg = fails(&e.run(&["detect", "--model", "no-such-model", "Cargo.toml"]));
    assert!(msg.contains("\"no-such-model\"") && msg.contains("anomalyclip") && msg.contains("tiny-ensemble"), "{msg}");
    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[model.x]\ndescription = \"x\"\nensemble = \"o\"\nclip = { hub = \"a/b\", revision = \"main\" }\n",
    )
    .unwrap();
    let msg = fails(&e.run(&["--registry", bad.to_str().unwrap(), "models"]));
    assert!(msg.contains("bad.toml, line 4") && msg.contains("`file` is required with `hub`"), "{msg}");
    std::fs::write(&bad, "[model.x]\ndescription = \"x\"\nclip = { url = \"https://h/f\", sha256 = \"ab\" }\n")
        .unwrap();
    let msg = fails(&e.run(&["--registry", bad.to_str().unwrap(), "models"]));
    assert!(msg.contains("line 3") && msg.contains("`sha256` must be 64 hex digits"), "{msg}");
}

#[test]
fn model_urls_download_once_and_pages_are_refused() {
    let dir = scratch("hub-urls");
    let e = HubEnv::new(&dir);
    let msg = fails(&e.run(&["fetch", "html"]));
    assert!(msg.contains("login.safetensors") && msg.contains("HTML"), "{msg}");
    let page = format!("{}/files/login.safetensors", e.gh.url);
    let msg = fails(&e.run(&["info", "--model", &page]));
    assert!(msg.contains("does not serve a model file"), "{msg}");
    assert_no_partials(&e.cache);
    // A model file made by `import`, served at a URL: downloaded once, then read from the cache.
    let model = dir.join("det.safetensors");
    e.import_tiny(&model);
    e.gh.file("/files/det.safetensors", std::sync::Arc::new(std::fs::read(&model).unwrap()));
    let url = format!("{}/files/det.safetensors", e.gh.url);
    let image = crate::common::clip::shared_data().join("saa-demo/carpet.png");
    for round in 0..2 {
        let out = dir.join(format!("out{round}"));
        let run = e.run(&["detect", "--model", &url, "--out", out.to_str().unwrap(), image.to_str().unwrap()]);
        assert!(run.status.success(), "{}", stderr(&run));
    }
    assert_eq!(e.gh.count("GET", "/files/det.safetensors"), 1);
}

#[test]
fn a_cache_that_cannot_be_written_and_a_full_disk() {
    let dir = scratch("hub-disk");
    let e = HubEnv::new(&dir);
    let file = dir.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let under = file.join("cache");
    let msg = fails(&e.run_with(&["fetch", "tiny-ensemble"], &[("HF_HOME", under.to_str().unwrap())]));
    assert!(msg.contains(&under.display().to_string()), "{msg}");
    // A full disk: the partial file is /dev/full, where every write fails with ENOSPC.
    let blobs = e.hf_home.join("hub/models--test--tiny-clip/blobs");
    std::fs::create_dir_all(&blobs).unwrap();
    let partial = blobs.join(format!("{}.incomplete", e.clip_sha));
    std::os::unix::fs::symlink("/dev/full", &partial).unwrap();
    let msg = fails(&e.run(&["fetch", "tiny-ensemble"]));
    assert!(msg.contains("disk is full"), "{msg}");
    assert!(!partial.exists() && !partial.is_symlink(), "the failed partial file was kept");
    assert!(!blobs.join(&e.clip_sha).exists());
}
