//! A fake Hugging Face hub, CDN and GitHub raw server on loopback, for the download tests (CI
//! has no network). It behaves like the real ones where tokenclip depends on them:
//! - hub: `HEAD`/`GET /{org}/{repo}/resolve/{rev}/{file}` answer `302` to the CDN with
//!   `X-Repo-Commit`, `X-Linked-Etag` (the file's sha256, quoted), `X-Linked-Size` and `ETag`;
//!   unknown files get `404` with `X-Error-Code: EntryNotFound`;
//! - CDN (a second server, so another host:port): `GET /blobs/{sha256}` with `Range` → `206`
//!   (`Content-Range`), `If-Range` honoured against its own strong `ETag`;
//! - GitHub raw: `GET /{owner}/{repo}/{commit}/{path}`, with ranges;
//! - [`Proxy`]: a forwarding HTTP proxy (`CONNECT`), as ureq uses proxies;
//! - faults: cut connections after some bytes, ignore `Range`, serve HTML, slow down.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `GET`, `HEAD`.
    pub method: String,
    /// The path (absolute-form requests reduced to their path).
    pub path: String,
    /// Whether the request line held an absolute URL (an absolute-form proxy request).
    pub proxied: bool,
    /// Headers, names lower-case.
    pub headers: HashMap<String, String>,
}

/// Faults to inject.
#[derive(Debug, Default)]
pub struct Faults {
    /// Cut this many of the next body responses after `cut_at` bytes.
    pub cuts_left: AtomicUsize,
    /// Where to cut.
    pub cut_at: AtomicUsize,
    /// Answer `200` with the whole file whatever the `Range`.
    pub ignore_range: AtomicBool,
    /// Sleep this many ms per 64 KiB sent.
    pub slow_ms: AtomicUsize,
}

#[derive(Default)]
struct State {
    /// path → (bytes, content type)
    files: HashMap<String, (Arc<Vec<u8>>, String)>,
    /// path → (status, headers) answered without a body lookup (the hub's resolve redirects).
    redirects: HashMap<String, (u16, Vec<(String, String)>)>,
    seen: Vec<Seen>,
}

/// A server on 127.0.0.1.
pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    state: Arc<Mutex<State>>,
    /// Its fault switches.
    pub faults: Arc<Faults>,
    stop: Arc<AtomicBool>,
    port: u16,
}

impl Server {
    /// Starts a server thread.
    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let faults = Arc::new(Faults::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (s, f, st) = (state.clone(), faults.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (s, f) = (s.clone(), f.clone());
                std::thread::spawn(move || {
                    let _ = serve(conn, &s, &f);
                });
            }
        });
        Server { url: format!("http://127.0.0.1:{port}"), state, faults, stop, port }
    }

    /// Serves `bytes` at `path`.
    pub fn file(&self, path: &str, bytes: Arc<Vec<u8>>) {
        self.state.lock().unwrap().files.insert(path.into(), (bytes, "application/octet-stream".into()));
    }

    /// Serves `body` as an HTML page at `path`.
    pub fn html(&self, path: &str, body: &str) {
        let bytes = Arc::new(body.as_bytes().to_vec());
        self.state.lock().unwrap().files.insert(path.into(), (bytes, "text/html; charset=utf-8".into()));
    }

    /// Answers `path` with `status` and `headers` and no body.
    pub fn redirect(&self, path: &str, status: u16, headers: Vec<(String, String)>) {
        self.state.lock().unwrap().redirects.insert(path.into(), (status, headers));
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Requests whose path starts with `prefix`.
    pub fn count(&self, method: &str, prefix: &str) -> usize {
        self.seen().iter().filter(|s| s.method == method && s.path.starts_with(prefix)).count()
    }

    /// Forgets the requests seen.
    pub fn clear_seen(&self) {
        self.state.lock().unwrap().seen.clear();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// sha256 hex.
pub fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// git blob id hex (sha1 of `blob N\0` + bytes).
pub fn git_blob(bytes: &[u8]) -> String {
    use sha1::Digest as _;
    let mut h = sha1::Sha1::new();
    h.update(format!("blob {}\0", bytes.len()).as_bytes());
    h.update(bytes);
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// The hub and its CDN.
pub struct FakeHub {
    /// The hub (`HF_ENDPOINT`).
    pub hub: Server,
    /// The CDN the hub redirects to.
    pub cdn: Server,
}

impl FakeHub {
    /// Starts both servers.
    pub fn start() -> FakeHub {
        FakeHub { hub: Server::start(), cdn: Server::start() }
    }

    /// Publishes `bytes` as `repo`'s `file` at `commit`; returns its sha256.
    pub fn publish(&self, repo: &str, commit: &str, file: &str, bytes: Arc<Vec<u8>>) -> String {
        let sha = sha256(&bytes);
        self.cdn.file(&format!("/blobs/{sha}"), bytes.clone());
        let headers = vec![
            ("location".to_string(), format!("{}/blobs/{sha}", self.cdn.url)),
            ("x-repo-commit".to_string(), commit.to_string()),
            ("x-linked-etag".to_string(), format!("\"{sha}\"")),
            ("x-linked-size".to_string(), bytes.len().to_string()),
            ("etag".to_string(), format!("\"{}\"", &sha[..40])),
        ];
        for rev in [commit, "main"] {
            self.hub.redirect(&format!("/{repo}/resolve/{rev}/{file}"), 302, headers.clone());
        }
        sha
    }
}

fn serve(conn: TcpStream, state: &Mutex<State>, faults: &Faults) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("/").to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let proxied = target.starts_with("http://");
    let path = if proxied {
        let rest = &target["http://".len()..];
        rest.find('/').map_or("/".to_string(), |i| rest[i..].to_string())
    } else {
        target
    };
    let path = path.split('?').next().unwrap_or("/").to_string();
    let seen = Seen { method: method.clone(), path: path.clone(), proxied, headers: headers.clone() };
    let (file, redirect) = {
        let mut s = state.lock().unwrap();
        s.seen.push(seen);
        (s.files.get(&path).cloned(), s.redirects.get(&path).cloned())
    };
    let mut out = conn;
    let cors = headers.get("origin").map(|o| format!("access-control-allow-origin: {o}\r\n")).unwrap_or_default();
    if let Some((status, hs)) = redirect {
        let mut head = format!("HTTP/1.1 {status} Found\r\ncontent-length: 0\r\nconnection: close\r\n{cors}");
        for (k, v) in hs {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        return out.write_all(head.as_bytes());
    }
    let Some((bytes, ctype)) = file else {
        let body = "not found";
        let head = format!(
            "HTTP/1.1 404 Not Found\r\nx-error-code: EntryNotFound\r\ncontent-length: {}\r\nconnection: close\r\n{cors}\r\n",
            body.len()
        );
        return out.write_all(format!("{head}{body}").as_bytes());
    };
    let etag = format!("\"cdn-{}\"", &sha256(&bytes)[..16]);
    let mut start = 0usize;
    let mut status = "200 OK";
    let range = headers.get("range").and_then(|r| r.strip_prefix("bytes=")).and_then(|r| r.strip_suffix('-'));
    let if_range_ok = headers.get("if-range").is_none_or(|v| *v == etag);
    if let (Some(r), false, true) = (range, faults.ignore_range.load(Ordering::SeqCst), if_range_ok) {
        if let Ok(s) = r.parse::<usize>() {
            if s >= bytes.len() {
                let head = format!(
                    "HTTP/1.1 416 Range Not Satisfiable\r\ncontent-range: bytes */{}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    bytes.len()
                );
                return out.write_all(head.as_bytes());
            }
            start = s;
            status = "206 Partial Content";
        }
    }
    let body = &bytes[start..];
    let mut head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\netag: {etag}\r\naccept-ranges: bytes\r\nconnection: close\r\n{cors}",
        body.len()
    );
    if start > 0 {
        head.push_str(&format!("content-range: bytes {start}-{}/{}\r\n", bytes.len() - 1, bytes.len()));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    if method == "HEAD" {
        return Ok(());
    }
    let cut = if faults.cuts_left.load(Ordering::SeqCst) > 0 {
        faults.cuts_left.fetch_sub(1, Ordering::SeqCst);
        Some(faults.cut_at.load(Ordering::SeqCst).min(body.len()))
    } else {
        None
    };
    let end = cut.unwrap_or(body.len());
    for chunk in body[..end].chunks(64 << 10) {
        out.write_all(chunk)?;
        let ms = faults.slow_ms.load(Ordering::SeqCst);
        if ms > 0 {
            std::thread::sleep(Duration::from_millis(ms as u64));
        }
    }
    out.flush()?;
    if cut.is_some() {
        // A connection that breaks mid-file.
        out.shutdown(std::net::Shutdown::Both)?;
    }
    Ok(())
}

/// A forwarding HTTP proxy (`CONNECT host:port`, then bytes both ways), recording the targets.
pub struct Proxy {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    targets: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    /// Starts the proxy thread.
    pub fn start() -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let targets = Arc::new(Mutex::new(Vec::new()));
        let t = targets.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let t = t.clone();
                std::thread::spawn(move || {
                    let _ = tunnel(conn, &t);
                });
            }
        });
        Proxy { url, targets }
    }

    /// The `host:port` of every tunnel opened.
    pub fn targets(&self) -> Vec<String> {
        self.targets.lock().unwrap().clone()
    }
}

fn tunnel(conn: TcpStream, targets: &Mutex<Vec<String>>) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
    }
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("").to_string());
    let mut client = conn;
    if method != "CONNECT" {
        return client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n");
    }
    targets.lock().unwrap().push(target.clone());
    let upstream = TcpStream::connect(&target)?;
    client.write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")?;
    let (mut up_r, mut up_w) = (upstream.try_clone()?, upstream);
    let mut client_w = client.try_clone()?;
    let back = std::thread::spawn(move || {
        let _ = std::io::copy(&mut up_r, &mut client_w);
        let _ = client_w.shutdown(std::net::Shutdown::Write);
    });
    // Bytes the reader already buffered belong to the tunnel.
    let buffered = reader.buffer().to_vec();
    up_w.write_all(&buffered)?;
    let mut rest = reader.into_inner();
    let _ = std::io::copy(&mut rest, &mut up_w);
    let _ = up_w.shutdown(std::net::Shutdown::Write);
    let _ = back.join();
    Ok(())
}
