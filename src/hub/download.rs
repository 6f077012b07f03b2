//! One file over HTTP into a partial file, resumably: a partial download continues with `Range`
//! (and `If-Range` with the validator the server gave, so a changed file is never spliced onto
//! an old beginning); a server that ignores the range answers 200 and the download restarts from
//! zero; cut connections and 5xx/429 answers are retried with backoff, continuing where they
//! stopped. The caller verifies and renames the result.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::http::{Head, Http, Transport};
use super::HubError;

/// Attempts in a row that make no progress before giving up.
const MAX_STALLED: u32 = 5;
/// Resumes in all, however much each one gained (a bound against a server that cuts forever).
const MAX_RESUMES: u32 = 100;

/// How a download reports what it is doing (the CLI draws a progress bar or prints lines).
pub trait Reporter {
    /// A transfer of `what` from `url` starts (or resumes at `from`), `total` bytes if known.
    fn started(&self, what: &str, url: &str, total: Option<u64>, from: u64);
    /// `done` bytes of the current transfer are on disk.
    fn progress(&self, done: u64);
    /// The transfer finished: `bytes` in `secs`.
    fn finished(&self, what: &str, bytes: u64, secs: f64);
    /// Anything else worth a line (waiting for a lock, a retry, verifying, converting).
    fn note(&self, msg: &str);
}

/// A reporter that says nothing.
pub struct Quiet;

impl Reporter for Quiet {
    fn started(&self, _: &str, _: &str, _: Option<u64>, _: u64) {}
    fn progress(&self, _: u64) {}
    fn finished(&self, _: &str, _: u64, _: f64) {}
    fn note(&self, _: &str) {}
}

/// What to download where.
pub struct Transfer<'a> {
    /// The address.
    pub url: &'a str,
    /// The partial file (kept between attempts and runs).
    pub partial: &'a Path,
    /// The size the file must have, if known.
    pub size: Option<u64>,
    /// A name for messages.
    pub what: &'a str,
}

fn validator_path(partial: &Path) -> PathBuf {
    let mut name = partial.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".validator");
    partial.with_file_name(name)
}

/// Removes a partial download and its validator.
pub fn discard(partial: &Path) {
    let _ = std::fs::remove_file(partial);
    let _ = std::fs::remove_file(validator_path(partial));
}

fn len_of(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// `bytes START-END/TOTAL` → (START, TOTAL); `bytes */TOTAL` → (None, TOTAL).
fn content_range(v: &str) -> Option<(Option<u64>, Option<u64>)> {
    let spec = v.strip_prefix("bytes")?.trim();
    let (range, total) = spec.split_once('/')?;
    let total = total.trim().parse().ok();
    if range.trim() == "*" {
        return Some((None, total));
    }
    let start = range.split_once('-')?.0.trim().parse().ok()?;
    Some((Some(start), total))
}

enum Step {
    Done,
    Retry(String),
    Restart(String),
}

/// Downloads `t.url` into `t.partial` until it holds the whole file; returns its length.
pub fn download(http: &Http, t: &Transfer, report: &dyn Reporter) -> Result<u64, HubError> {
    let network = |what: String| HubError::Network { url: t.url.to_string(), what };
    if let Some(dir) = t.partial.parent() {
        super::cache::ensure_dir(dir)?;
    }
    let (mut stalled, mut resumes) = (0u32, 0u32);
    loop {
        let before = len_of(t.partial);
        let step = attempt(http, t, report)?;
        let after = len_of(t.partial);
        match step {
            Step::Done => return Ok(after),
            Step::Restart(why) => {
                resumes += 1;
                if resumes >= MAX_RESUMES {
                    return Err(network(format!("{why} (gave up after {resumes} attempts)")));
                }
                report.note(&format!("{}: {why}; starting again from the beginning", t.what));
                discard(t.partial);
            }
            Step::Retry(why) => {
                stalled = if after > before { 0 } else { stalled + 1 };
                resumes += 1;
                if stalled >= MAX_STALLED || resumes >= MAX_RESUMES {
                    let kept = if after > 0 {
                        format!("; the {after} bytes already downloaded are kept, and the next run continues from them")
                    } else {
                        String::new()
                    };
                    return Err(HubError::Unreachable {
                        url: t.url.to_string(),
                        what: format!("{why} (gave up after {resumes} attempts{kept})"),
                        cache: String::new(),
                        name: String::new(),
                    });
                }
                let wait = Duration::from_millis(250 << stalled.min(5)).min(Duration::from_secs(8));
                report.note(&format!("{}: {why}; retrying in {:.1} s", t.what, wait.as_secs_f64()));
                std::thread::sleep(wait);
            }
        }
    }
}

fn attempt(http: &Http, t: &Transfer, report: &dyn Reporter) -> Result<Step, HubError> {
    let network = |what: String| HubError::Network { url: t.url.to_string(), what };
    let have = len_of(t.partial);
    if let Some(size) = t.size {
        if have == size {
            return Ok(Step::Done);
        }
        if have > size {
            return Ok(Step::Restart(format!("the partial file has {have} bytes, more than the {size} expected")));
        }
    }
    let vpath = validator_path(t.partial);
    let mut headers = Vec::new();
    if have > 0 {
        headers.push(("range", format!("bytes={have}-")));
        if let Ok(v) = std::fs::read_to_string(&vpath) {
            headers.push(("if-range", v.trim().to_string()));
        }
    }
    let (head, resp) = match http.send("GET", t.url, &headers, true) {
        Ok(r) => r,
        Err(Transport(e)) => return Ok(Step::Retry(e)),
    };
    let start = match head.status {
        200 => {
            if have > 0 {
                // The server ignored the range (or the file changed): the body is the whole file.
                discard(t.partial);
            }
            0
        }
        206 => match head.header("content-range").and_then(content_range) {
            Some((Some(s), _)) if s == have => have,
            other => return Ok(Step::Restart(format!("the server answered a range request with {other:?}"))),
        },
        416 => {
            let total = head.header("content-range").and_then(content_range).and_then(|(_, t)| t);
            return Ok(if total == Some(have) { Step::Done } else { Step::Restart("range not satisfiable".into()) });
        }
        404 | 410 => return Err(network(format!("not found (HTTP {}{})", head.status, hub_error_code(&head)))),
        401 | 403 => {
            return Err(network(format!(
                "access denied (HTTP {}{}): a gated or private repository needs HF_TOKEN",
                head.status,
                hub_error_code(&head)
            )))
        }
        408 | 429 | 500..=599 => return Ok(Step::Retry(format!("the server answered HTTP {}", head.status))),
        s => return Err(network(format!("unexpected answer HTTP {s}"))),
    };
    if head.header("content-type").is_some_and(|c| c.to_ascii_lowercase().starts_with("text/html")) {
        discard(t.partial);
        return Err(HubError::NotAModel {
            url: t.url.into(),
            what: "it is an HTML page (a login or error page?), not a file".into(),
        });
    }
    let length = head.header("content-length").and_then(|v| v.parse::<u64>().ok());
    let total = length.map(|l| l + start);
    if let (Some(total), Some(size)) = (total, t.size) {
        if total != size {
            discard(t.partial);
            return Err(network(format!("the server sends {total} bytes, but the file must have {size}")));
        }
    }
    if head.status == 200 {
        // Remember what identifies this version of the file, for If-Range when resuming.
        let validator = head.header("etag").filter(|e| !e.starts_with("W/")).or_else(|| head.header("last-modified"));
        match validator {
            Some(v) => std::fs::write(&vpath, v).map_err(|e| HubError::io(&vpath, &e))?,
            None => {
                let _ = std::fs::remove_file(&vpath);
            }
        }
    }
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(t.partial)
        .map_err(|e| HubError::io(t.partial, &e))?;
    report.started(t.what, &head.url, total.or(t.size), start);
    let began = Instant::now();
    let mut body = resp.into_body().into_reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut done = start;
    let cut = loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break None,
            Ok(n) => n,
            Err(e) => break Some(e.to_string()),
        };
        if let Err(e) = file.write_all(&buf[..n]) {
            drop(file);
            if e.kind() == std::io::ErrorKind::StorageFull {
                discard(t.partial);
            }
            return Err(HubError::io(t.partial, &e));
        }
        done += n as u64;
        report.progress(done);
    };
    file.sync_all().map_err(|e| HubError::io(t.partial, &e))?;
    if let Some(e) = cut {
        return Ok(Step::Retry(format!("the connection broke after {done} bytes ({e})")));
    }
    if let Some(total) = total.or(t.size) {
        if done < total {
            return Ok(Step::Retry(format!("the connection closed after {done} of {total} bytes")));
        }
    }
    report.finished(t.what, done - start, began.elapsed().as_secs_f64());
    Ok(Step::Done)
}

/// `, X-Error-Code: RepoNotFound` when the hub says why.
fn hub_error_code(head: &Head) -> String {
    head.header("x-error-code").map(|c| format!(", {c}")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_ranges_parse() {
        assert_eq!(content_range("bytes 100-199/200"), Some((Some(100), Some(200))));
        assert_eq!(content_range("bytes */200"), Some((None, Some(200))));
        assert_eq!(content_range("bytes 5-9/*"), Some((Some(5), None)));
        assert_eq!(content_range("items 1-2/3"), None);
    }
}
