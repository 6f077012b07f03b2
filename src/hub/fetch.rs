//! A [`FileSource`] into the cache, verified: nothing is returned before its size and hash
//! have been checked, and nothing unverified is ever under a final name.

use std::path::{Path, PathBuf};

use super::cache::{ensure_dir, HubConfig, Lock};
use super::download::{discard, download, Reporter, Transfer};
use super::http::{host_of, Http, Transport};
use super::source::{is_commit, Digest, FileSource};
use super::verify::{check_reader, sha256_hex};
use super::HubError;

/// Downloads into the caches of a [`HubConfig`].
pub struct Fetcher<'a> {
    /// Endpoints, caches, token, offline setting.
    pub cfg: &'a HubConfig,
    http: Http,
    report: &'a dyn Reporter,
}

/// What the hub says about a file (from a HEAD request, without downloading it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubFile {
    /// The commit the revision resolved to (`X-Repo-Commit`).
    pub commit: String,
    /// The blob's etag: the sha256 of an LFS file, the git blob id of a small one.
    pub etag: String,
    /// Its size.
    pub size: Option<u64>,
}

impl<'a> Fetcher<'a> {
    /// A fetcher reporting to `report`.
    pub fn new(cfg: &'a HubConfig, report: &'a dyn Reporter) -> Self {
        let token_host = host_of(&cfg.endpoints.hub).map(str::to_string);
        Fetcher { cfg, http: Http::new(cfg.hf_token.clone(), token_host), report }
    }

    /// The file `src` of model `model`, from the cache or downloaded, verified.
    pub fn fetch(&self, src: &FileSource, model: &str) -> Result<PathBuf, HubError> {
        let cache = match src {
            FileSource::Hub { .. } => &self.cfg.hf_cache,
            _ => &self.cfg.cache,
        };
        self.fetch_inner(src, model).map_err(|e| match e {
            HubError::Unreachable { url, what, .. } => {
                HubError::Unreachable { url, what, cache: cache.display().to_string(), name: model.into() }
            }
            e => e,
        })
    }

    fn fetch_inner(&self, src: &FileSource, model: &str) -> Result<PathBuf, HubError> {
        match src {
            FileSource::Hub { .. } => self.fetch_hub(src, model),
            FileSource::GitHub { repo, commit, path, .. } => {
                let dest = self.cfg.cache.join("github").join(repo).join(commit).join(path);
                self.fetch_plain(src, &dest, model)
            }
            FileSource::Url { url, .. } => self.fetch_plain(src, &self.url_path(url, src.file_name()), model),
        }
    }

    fn url_path(&self, url: &str, name: &str) -> PathBuf {
        self.cfg.cache.join("urls").join(&sha256_hex(url.as_bytes())[..16]).join(name)
    }

    fn offline(&self, what: &str, model: &str, url: &str, cache: &Path) -> HubError {
        HubError::Offline {
            what: what.into(),
            name: model.into(),
            url: url.into(),
            cache: cache.display().to_string(),
            why: self.cfg.offline.clone().unwrap_or_default(),
        }
    }

    /// Checks a file against the size and digest `src` promises; a file that fails is deleted.
    fn verify(&self, path: &Path, size: Option<u64>, digest: &Digest, src: &FileSource) -> Result<(), HubError> {
        let what = src.file_name().to_string();
        let len = std::fs::metadata(path).map_err(|e| HubError::io(path, &e))?.len();
        let fail = |problem: String| {
            let _ = std::fs::remove_file(path);
            HubError::Verify {
                what: what.clone(),
                source_desc: src.describe(),
                problem: format!("{problem}; the file was deleted, so the next run downloads it again"),
            }
        };
        if let Some(size) = size.filter(|s| *s != len) {
            return Err(fail(format!("it has {len} bytes, expected {size}")));
        }
        self.report.note(&format!("verifying {what} ({})", digest.describe()));
        let file = std::fs::File::open(path).map_err(|e| HubError::io(path, &e))?;
        match check_reader(std::io::BufReader::with_capacity(1 << 20, file), len, digest) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(problem)) => Err(fail(problem)),
            Err(e) => Err(HubError::io(path, &e)),
        }
    }

    /// Downloads `url` into `partial`, verifies it and renames it to `dest`.
    fn download_verified(
        &self,
        url: &str,
        partial: &Path,
        dest: &Path,
        size: Option<u64>,
        digest: &Digest,
        src: &FileSource,
    ) -> Result<(), HubError> {
        download(&self.http, &Transfer { url, partial, size, what: src.file_name() }, self.report)?;
        if let Err(e) = self.verify(partial, size, digest, src) {
            discard(partial);
            return Err(e);
        }
        std::fs::rename(partial, dest).map_err(|e| HubError::io(dest, &e))?;
        discard(partial);
        Ok(())
    }

    fn fetch_plain(&self, src: &FileSource, dest: &Path, model: &str) -> Result<PathBuf, HubError> {
        let digest = src.digest().ok_or_else(|| HubError::Registry {
            file: model.into(),
            line: None,
            what: format!("{} has no hash to check it against", src.describe()),
        })?;
        if dest.exists() {
            self.verify(dest, src.size(), &digest, src)?;
            return Ok(dest.to_path_buf());
        }
        let url = src.url(&self.cfg.endpoints);
        if self.cfg.offline.is_some() {
            return Err(self.offline(src.file_name(), model, &url, &self.cfg.cache));
        }
        let dir = dest.parent().unwrap_or(Path::new("."));
        ensure_dir(dir)?;
        let _lock = Lock::acquire(&self.cfg.lock_for(dest), || {
            self.report.note(&format!("waiting for another process downloading {}", src.file_name()))
        })?;
        if !dest.exists() {
            self.download_verified(&url, &partial_of(dest), dest, src.size(), &digest, src)?;
        }
        Ok(dest.to_path_buf())
    }

    /// A model file at a plain URL (no hash known): cached by address, refused if it is a page.
    pub fn fetch_url(&self, url: &str) -> Result<PathBuf, HubError> {
        let name = FileSource::Url { url: url.into(), size: None, digest: Digest::Sha256(String::new()) };
        let dest = self.url_path(url, name.file_name());
        if dest.exists() {
            return Ok(dest);
        }
        if self.cfg.offline.is_some() {
            return Err(self.offline(name.file_name(), url, url, &self.cfg.cache));
        }
        ensure_dir(dest.parent().unwrap_or(Path::new(".")))?;
        let _lock = Lock::acquire(&self.cfg.lock_for(&dest), || {
            self.report.note(&format!("waiting for another process downloading {url}"))
        })?;
        if dest.exists() {
            return Ok(dest);
        }
        let partial = partial_of(&dest);
        download(&self.http, &Transfer { url, partial: &partial, size: None, what: name.file_name() }, self.report)
            .map_err(|e| match e {
                HubError::Unreachable { url, what, .. } => {
                    HubError::Unreachable { url, what, cache: self.cfg.cache.display().to_string(), name: "URL".into() }
                }
                e => e,
            })?;
        let mut head = [0u8; 64];
        let n = std::fs::File::open(&partial)
            .and_then(|mut f| std::io::Read::read(&mut f, &mut head))
            .map_err(|e| HubError::io(&partial, &e))?;
        let start = String::from_utf8_lossy(&head[..n]).trim_start().to_ascii_lowercase();
        if n == 0 || start.starts_with("<!doctype") || start.starts_with("<html") || start.starts_with("<?xml") {
            discard(&partial);
            let what = if n == 0 { "the body is empty" } else { "it is an HTML or XML page, not a model file" };
            return Err(HubError::NotAModel { url: url.into(), what: what.into() });
        }
        std::fs::rename(&partial, &dest).map_err(|e| HubError::io(&dest, &e))?;
        discard(&partial);
        Ok(dest)
    }

    /// Asks the hub about a file (HEAD, following only the hub's own relative redirects).
    pub fn hub_head(&self, url: &str) -> Result<HubFile, HubError> {
        let network = |what: String| HubError::Network { url: url.into(), what };
        let mut at = url.to_string();
        let (mut failures, mut redirects) = (0, 0);
        let head = loop {
            match self.http.send("HEAD", &at, &[], false) {
                // The hub's own renames (relative redirects); a CDN redirect is where the file is.
                Ok((h, _))
                    if (300..400).contains(&h.status) && h.header("location").is_some_and(|l| !l.contains("://")) =>
                {
                    redirects += 1;
                    if redirects > 10 {
                        return Err(network("too many redirects".into()));
                    }
                    at = super::http::join(&at, h.header("location").unwrap_or_default());
                }
                Ok((h, _)) => break h,
                Err(Transport(e)) if failures < 2 => {
                    failures += 1;
                    self.report.note(&format!("{url}: {e}; retrying"));
                    std::thread::sleep(std::time::Duration::from_millis(500 * failures));
                }
                Err(Transport(e)) => {
                    return Err(HubError::Unreachable {
                        url: url.into(),
                        what: e,
                        cache: String::new(),
                        name: String::new(),
                    })
                }
            }
        };
        let code = head.header("x-error-code").map(|c| format!(", {c}")).unwrap_or_default();
        match head.status {
            200..=399 => {}
            401 | 403 => {
                return Err(network(format!(
                    "access denied (HTTP {}{code}): a gated or private repository needs HF_TOKEN",
                    head.status
                )))
            }
            404 => return Err(network(format!("not found (HTTP 404{code})"))),
            s => return Err(network(format!("the hub answered HTTP {s}{code}"))),
        }
        let commit = head.header("x-repo-commit").map(str::to_string).ok_or_else(|| {
            network("the answer has no X-Repo-Commit header: is HF_ENDPOINT a Hugging Face hub?".into())
        })?;
        let etag = head
            .header("x-linked-etag")
            .or_else(|| head.header("etag"))
            .map(|e| e.trim_start_matches("W/").trim_matches('"').to_ascii_lowercase())
            .ok_or_else(|| network("the answer has no ETag".into()))?;
        let size = head.header("x-linked-size").or_else(|| head.header("content-length")).and_then(|s| s.parse().ok());
        Ok(HubFile { commit, etag, size })
    }

    fn fetch_hub(&self, src: &FileSource, model: &str) -> Result<PathBuf, HubError> {
        let FileSource::Hub { repo, revision, file, size, sha256 } = src else {
            return Err(HubError::Registry { file: model.into(), line: None, what: "not a hub source".into() });
        };
        let repo_dir = self.cfg.hf_repo_dir(repo);
        let pinned = |etag: &str| match sha256 {
            Some(h) => Digest::Sha256(h.clone()),
            None if etag.len() == 40 => Digest::GitBlob(etag.to_string()),
            None => Digest::Sha256(etag.to_string()),
        };
        // A snapshot already in the cache (ours or open_clip's): no network needed.
        let known_commit = if is_commit(revision) {
            Some(revision.clone())
        } else {
            std::fs::read_to_string(repo_dir.join("refs").join(revision)).ok().map(|c| c.trim().to_string())
        };
        if let Some(commit) = &known_commit {
            let snap = repo_dir.join("snapshots").join(commit).join(file);
            let etag = blob_of(&snap).filter(|e| snap.exists() && (!e.is_empty() || sha256.is_some()));
            if let Some(etag) = etag {
                if is_commit(revision) || self.cfg.offline.is_some() {
                    self.verify(&snap, *size, &pinned(&etag), src)?;
                    return Ok(snap);
                }
            }
        }
        let url = src.url(&self.cfg.endpoints);
        if self.cfg.offline.is_some() {
            return Err(self.offline(file, model, &url, &self.cfg.hf_cache));
        }
        let info = self.hub_head(&url)?;
        let mismatch = |problem: String| HubError::Verify {
            what: file.clone(),
            source_desc: src.describe(),
            problem: format!("{problem}; nothing was downloaded"),
        };
        if is_commit(revision) && !info.commit.eq_ignore_ascii_case(revision) {
            return Err(mismatch(format!("the hub answered for commit {}, not the pinned {revision}", info.commit)));
        }
        if !(info.etag.len() == 64 || info.etag.len() == 40) || !info.etag.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(mismatch(format!("the hub's etag {:?} is not a sha256 or git blob id", info.etag)));
        }
        if let Some(pin) = sha256 {
            if !pin.eq_ignore_ascii_case(&info.etag) {
                return Err(mismatch(format!(
                    "the hub says its sha256 is {} (X-Linked-Etag), but the registry pins {pin}",
                    info.etag
                )));
            }
        }
        if let (Some(pin), Some(got)) = (size, info.size) {
            if *pin != got {
                return Err(mismatch(format!("the hub says it has {got} bytes, but the registry pins {pin}")));
            }
        }
        let digest = pinned(&info.etag);
        let size = size.or(info.size);
        let blob = repo_dir.join("blobs").join(&info.etag);
        let snap = repo_dir.join("snapshots").join(&info.commit).join(file);
        ensure_dir(blob.parent().unwrap_or(Path::new(".")))?;
        let _lock = Lock::acquire(&self.cfg.hf_lock(repo, &info.etag), || {
            self.report.note(&format!("waiting for another process downloading {file}"))
        })?;
        if blob.exists() {
            self.verify(&blob, size, &digest, src)?;
        } else {
            self.download_verified(&url, &partial_of(&blob), &blob, size, &digest, src)?;
        }
        link_snapshot(&blob, &snap)?;
        if !is_commit(revision) {
            let r = repo_dir.join("refs").join(revision);
            ensure_dir(r.parent().unwrap_or(Path::new(".")))?;
            write_small_atomic(&r, info.commit.as_bytes())?;
        }
        Ok(snap)
    }
}

/// `NAME.incomplete` beside `dest` (the hub cache's own name for a partial blob).
fn partial_of(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".incomplete");
    dest.with_file_name(name)
}

/// The blob a snapshot entry points to (its etag); empty for a copied file (no etag known).
fn blob_of(snap: &Path) -> Option<String> {
    match std::fs::read_link(snap) {
        Ok(target) => target.file_name().map(|n| n.to_string_lossy().into_owned()),
        // A copied (not linked) snapshot file, as on Windows without symlinks: no etag in its name.
        Err(_) if snap.is_file() => Some(String::new()),
        Err(_) => None,
    }
}

/// Points `snap` at `blob` with a relative symlink (as `huggingface_hub` does), atomically;
/// where symlinks are not allowed, a hard link or a copy.
fn link_snapshot(blob: &Path, snap: &Path) -> Result<(), HubError> {
    if snap.exists() {
        return Ok(());
    }
    let dir = snap.parent().unwrap_or(Path::new("."));
    ensure_dir(dir)?;
    let tmp = dir.join(format!(
        ".{}.link-{}",
        snap.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    let linked = relative_to(blob, dir).and_then(|rel| symlink(&rel, &tmp).ok()).is_some();
    if !linked {
        std::fs::hard_link(blob, &tmp)
            .or_else(|_| std::fs::copy(blob, &tmp).map(|_| ()))
            .map_err(|e| HubError::io(snap, &e))?;
    }
    std::fs::rename(&tmp, snap).map_err(|e| HubError::io(snap, &e))
}

#[cfg(unix)]
fn symlink(target: &Path, at: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(target, at)
}

#[cfg(windows)]
fn symlink(target: &Path, at: &Path) -> std::io::Result<()> {
    std::os::windows::fs::symlink_file(target, at)
}

#[cfg(not(any(unix, windows)))]
fn symlink(_: &Path, _: &Path) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

/// `target` relative to the folder `from` (both inside one cache), e.g. `../../blobs/ETAG`.
fn relative_to(target: &Path, from: &Path) -> Option<PathBuf> {
    let t: Vec<_> = target.components().collect();
    let f: Vec<_> = from.components().collect();
    let common = t.iter().zip(&f).take_while(|(a, b)| a == b).count();
    if common == 0 {
        return None;
    }
    let mut rel = PathBuf::new();
    for _ in common..f.len() {
        rel.push("..");
    }
    for c in &t[common..] {
        rel.push(c);
    }
    Some(rel)
}

/// Writes a small file atomically (temporary name, then rename).
pub fn write_small_atomic(path: &Path, bytes: &[u8]) -> Result<(), HubError> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}",
        path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default(),
        std::process::id()
    ));
    std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path)).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        HubError::io(path, &e)
    })
}
