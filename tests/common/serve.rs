//! `tokenclip serve` in tests: the server started on a free loopback port, and a blocking HTTP
//! client that hands back every status (4xx and 5xx included).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::cli::command;

/// A running `tokenclip serve`, killed when dropped.
pub struct Server {
    /// The process.
    pub child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

/// A response: status, headers (lower-case names) and body.
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// Header name → value.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

impl Server {
    /// Starts `serve --model MODEL --port 0 --backend cpu EXTRA` with `env` and waits until it is
    /// ready (at most 60 s).
    pub fn start(model: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        Self::start_with(&["--backend", "cpu"], model, extra, env)
    }

    /// [`Server::start`] with the global options `global` (before `serve`) instead of
    /// `--backend cpu`.
    pub fn start_with(global: &[&str], model: &Path, extra: &[&str], env: &[(&str, &str)]) -> Server {
        let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = Vec::new();
        for g in global {
            args.push(g);
        }
        args.extend([&"serve" as &dyn AsRef<std::ffi::OsStr>, &"--model", &model, &"--port", &"0"]);
        for e in extra {
            args.push(e);
        }
        let mut child = command(&args, env).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let addr = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("no address in {line:?}"));
        let server = Server { child, url: addr.to_string() };
        let start = Instant::now();
        while server.get("/v2/health/ready").status != 200 {
            assert!(start.elapsed() < Duration::from_secs(60), "the server did not become ready");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Reply {
        reply(agent().get(format!("{}{path}", self.url)).call())
    }

    /// `POST path` with `body` and `headers`.
    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let mut req = agent().post(format!("{}{path}", self.url));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        reply(req.send(body))
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let ok = std::process::Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(ok.success());
    }

    /// Waits (at most `limit`) for the process to exit; its status and standard error.
    pub fn wait(mut self, limit: Duration) -> (std::process::ExitStatus, String) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut err = String::new();
                std::io::Read::read_to_string(self.child.stderr.as_mut().unwrap(), &mut err).unwrap();
                return (status, err);
            }
            assert!(start.elapsed() < limit, "the server did not exit within {limit:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn reply(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
    let mut r = r.unwrap_or_else(|e| panic!("request failed: {e}"));
    let headers =
        r.headers().iter().map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string())).collect();
    let body = r.body_mut().with_config().limit(1 << 30).read_to_vec().unwrap();
    Reply { status: r.status().as_u16(), headers, body }
}
