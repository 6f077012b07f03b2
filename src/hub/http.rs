//! The HTTP client downloads use: ureq with proxies (and `NO_PROXY`) from the environment,
//! connect and read timeouts, and redirects followed here rather than by ureq, so a token sent
//! to the hub is never forwarded to another host (the hub redirects large files to its CDN).

use std::time::Duration;

use ureq::http::{HeaderMap, Response};
use ureq::Body;

/// Redirects followed per request.
const MAX_REDIRECTS: usize = 10;

/// A response's status and headers (names lower-case), and the address that gave it.
#[derive(Debug, Clone)]
pub struct Head {
    /// HTTP status.
    pub status: u16,
    /// Headers.
    pub headers: HeaderMap,
    /// The address that answered (after redirects).
    pub url: String,
}

impl Head {
    /// A header as text, if present and valid.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
    }
}

/// A connection-level failure (no answer at all): worth retrying.
#[derive(Debug)]
pub struct Transport(pub String);

/// The client: one agent, and a bearer token sent only to the host it belongs to.
pub struct Http {
    agent: ureq::Agent,
    token: Option<(String, String)>,
}

impl Http {
    /// A client; `token` is sent as `Authorization: Bearer …` to `token_host` only.
    pub fn new(token: Option<String>, token_host: Option<String>) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .timeout_per_read(Some(Duration::from_secs(60)))
            .user_agent(format!("tokenclip/{}", env!("CARGO_PKG_VERSION")))
            .build();
        let token = token.zip(token_host);
        Http { agent: config.new_agent(), token }
    }

    /// Sends `method` to `url` with `headers`; with `follow`, redirects are followed (the token
    /// is dropped once the host changes). Returns the last response, body unread.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        follow: bool,
    ) -> Result<(Head, Response<Body>), Transport> {
        let mut url = url.to_string();
        for _ in 0..=MAX_REDIRECTS {
            let mut req = ureq::http::Request::builder().method(method).uri(&url).header("accept-encoding", "identity");
            for (k, v) in headers {
                req = req.header(*k, v.as_str());
            }
            if let Some((token, host)) = &self.token {
                if host_of(&url) == Some(host.as_str()) {
                    req = req.header("authorization", format!("Bearer {token}"));
                }
            }
            let req = req.body(()).map_err(|e| Transport(format!("bad request for {url}: {e}")))?;
            let resp = self.agent.run(req).map_err(|e| Transport(e.to_string()))?;
            let status = resp.status().as_u16();
            let head = Head { status, headers: resp.headers().clone(), url: url.clone() };
            let location = head.header("location").map(str::to_string);
            match location {
                Some(loc) if follow && (300..400).contains(&status) => url = join(&url, &loc),
                _ => return Ok((head, resp)),
            }
        }
        Err(Transport(format!("more than {MAX_REDIRECTS} redirects from {url}")))
    }
}

/// The `host[:port]` of an absolute URL.
pub fn host_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    Some(authority.rsplit_once('@').map_or(authority, |(_, h)| h))
}

/// Resolves a `Location` against the URL that sent it.
pub fn join(base: &str, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let scheme = base.split_once("://").map_or("https", |(s, _)| s);
    if let Some(rest) = location.strip_prefix("//") {
        return format!("{scheme}://{rest}");
    }
    let origin = match host_of(base) {
        Some(h) => format!("{scheme}://{h}"),
        None => return location.to_string(),
    };
    if location.starts_with('/') {
        return format!("{origin}{location}");
    }
    let path = base.split_once("://").map(|(_, r)| r).unwrap_or("");
    let path = path.find('/').map_or("/", |i| &path[i..]);
    let path = path.split(['?', '#']).next().unwrap_or("/");
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    format!("{origin}{dir}{location}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_resolve_like_a_browser() {
        let base = "http://127.0.0.1:9/timm/x/resolve/main/f.safetensors?x=1";
        assert_eq!(join(base, "https://cdn.example/a"), "https://cdn.example/a");
        assert_eq!(join(base, "/api/r"), "http://127.0.0.1:9/api/r");
        assert_eq!(join(base, "g.bin"), "http://127.0.0.1:9/timm/x/resolve/main/g.bin");
        assert_eq!(join(base, "//other:1/p"), "http://other:1/p");
        assert_eq!(host_of("https://user@hub.example:8/p"), Some("hub.example:8"));
    }
}
