//! Downloads done right: resumed after cuts, restarted when ranges are ignored, refused on a
//! wrong hash, done once by two processes at once, through a proxy, with the token for the hub only.

use std::sync::atomic::Ordering;

use crate::common::clip::scratch;
use crate::env::{assert_no_partials, stderr, HubEnv, CLIP_COMMIT};

fn blob(e: &HubEnv) -> std::path::PathBuf {
    e.hf_home.join("hub/models--test--tiny-clip/blobs").join(&e.clip_sha)
}

#[test]
fn a_cut_connection_resumes_and_gives_the_same_bytes() {
    let dir = scratch("hub-cut");
    let e = HubEnv::new(&dir);
    e.hub.cdn.faults.cut_at.store(3 << 20, Ordering::SeqCst);
    e.hub.cdn.faults.cuts_left.store(2, Ordering::SeqCst);
    let run = e.run(&["fetch", "tiny"]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(std::fs::read(blob(&e)).unwrap(), *e.clip_bytes, "resumed download differs from the file");
    let gets: Vec<_> = e.hub.cdn.seen().into_iter().filter(|s| s.method == "GET").collect();
    assert_eq!(gets.len(), 3, "{gets:?}");
    assert!(!gets[0].headers.contains_key("range"));
    for g in &gets[1..] {
        assert!(g.headers.get("range").is_some_and(|r| r.starts_with("bytes=")), "{g:?}");
        assert!(g.headers.get("if-range").is_some_and(|v| v.starts_with("\"cdn-")), "{g:?}");
    }
    assert_eq!(gets[1].headers["range"], format!("bytes={}-", 3 << 20));
    assert!(stderr(&run).contains("the connection"), "{}", stderr(&run));
    assert_no_partials(&e.hf_home);
}

#[test]
fn a_server_that_ignores_range_restarts_cleanly() {
    let dir = scratch("hub-norange");
    let e = HubEnv::new(&dir);
    // A partial download left by an earlier run, with wrong bytes in it: only a clean restart
    // can give the right file.
    let blobs = blob(&e).parent().unwrap().to_path_buf();
    std::fs::create_dir_all(&blobs).unwrap();
    let partial = blobs.join(format!("{}.incomplete", e.clip_sha));
    std::fs::write(&partial, vec![0xAAu8; 1 << 20]).unwrap();
    e.hub.cdn.faults.ignore_range.store(true, Ordering::SeqCst);
    let run = e.run(&["fetch", "tiny"]);
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(std::fs::read(blob(&e)).unwrap(), *e.clip_bytes);
    assert_eq!(e.hub.cdn.seen()[0].headers["range"], format!("bytes={}-", 1 << 20));
    assert_no_partials(&e.hf_home);
}

#[test]
fn a_wrong_hash_is_refused_and_nothing_is_kept() {
    let dir = scratch("hub-hash");
    let e = HubEnv::new(&dir);
    // The registry pins another sha256 than the hub publishes: refused before downloading.
    let run = e.run(&["fetch", "tiny-bad-sha"]);
    assert_eq!(run.status.code(), Some(1));
    let msg = stderr(&run);
    assert!(msg.contains(&e.clip_sha) && msg.contains(&"0".repeat(64)) && msg.contains("test/tiny-clip"), "{msg}");
    assert_eq!(e.hub.cdn.count("GET", "/blobs/"), 0);
    // A GitHub file whose git blob id is wrong: downloaded, checked, deleted, named.
    let run = e.run(&["fetch", "tiny-bad-blob"]);
    assert_eq!(run.status.code(), Some(1));
    let msg = stderr(&run);
    assert!(msg.contains("git blob id") && msg.contains("GitHub test/anomalyclip") && msg.contains("deleted"), "{msg}");
    let pth = e.cache.join("github/test/anomalyclip").join(crate::env::PTH_COMMIT).join("checkpoints/m1/epoch_15.pth");
    assert!(!pth.exists());
    assert!(!e.cache.join("models").exists() || std::fs::read_dir(e.cache.join("models")).unwrap().next().is_none());
    assert_no_partials(&e.cache);
    // Without a pinned hash, the hub's own sha256 is the check (and passes).
    let run = e.run(&["fetch", "tiny-unpinned"]);
    assert!(run.status.success(), "{}", stderr(&run));
}

#[test]
fn two_processes_fetching_at_once_download_once() {
    let dir = scratch("hub-concurrent");
    let e = HubEnv::new(&dir);
    e.hub.cdn.faults.slow_ms.store(15, Ordering::SeqCst);
    let a = e.command().args(["fetch", "tiny"]).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let b = e.command().args(["fetch", "tiny"]).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", stderr(&a));
    assert!(b.status.success(), "{}", stderr(&b));
    assert_eq!(e.hub.cdn.count("GET", "/blobs/"), 1, "the file was downloaded more than once");
    assert_eq!(std::fs::read(blob(&e)).unwrap(), *e.clip_bytes);
    assert_eq!(e.converted("tiny"), e.converted("tiny"));
}

#[test]
fn proxies_come_from_the_environment_and_the_token_goes_to_the_hub_only() {
    let dir = scratch("hub-proxy");
    let e = HubEnv::new(&dir);
    let proxy = crate::common::fake_hub::Proxy::start();
    let run = e.run_with(&["fetch", "tiny"], &[("HTTP_PROXY", proxy.url.as_str()), ("HF_TOKEN", "hf_secret")]);
    assert!(run.status.success(), "{}", stderr(&run));
    let host = |u: &str| u.trim_start_matches("http://").to_string();
    let targets = proxy.targets();
    for server in [&e.hub.hub.url, &e.hub.cdn.url, &e.gh.url] {
        assert!(targets.contains(&host(server)), "no tunnel to {server}: {targets:?}");
    }
    let hub = e.hub.hub.seen();
    assert!(
        !hub.is_empty() && hub.iter().all(|s| s.headers.get("authorization").is_some_and(|a| a == "Bearer hf_secret"))
    );
    let others = e.hub.cdn.seen().into_iter().chain(e.gh.seen());
    assert!(others.into_iter().all(|s| !s.headers.contains_key("authorization")), "the token left the hub");
    let _ = CLIP_COMMIT;
}
