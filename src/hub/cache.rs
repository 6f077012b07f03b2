//! Where downloads and conversions live, what the environment says about them, and the locks
//! that keep two processes from writing the same file.
//!
//! - Hub files: the Hugging Face cache layout under `HF_HUB_CACHE` (default `HF_HOME/hub`,
//!   `HF_HOME` defaulting to `$XDG_CACHE_HOME/huggingface` or `~/.cache/huggingface`):
//!   `models--ORG--NAME/blobs/ETAG`, `snapshots/COMMIT/FILE` → the blob, `refs/REVISION`, locks in
//!   `.locks/models--ORG--NAME/ETAG.lock`, as `huggingface_hub` writes them, so a file open_clip
//!   already downloaded is used as it is and two tools never download it at once.
//! - Everything else: `TOKENCLIP_CACHE` (default `tokenclip` in the platform cache folder):
//!   `github/OWNER/REPO/COMMIT/PATH`, `urls/HASH/NAME`, converted `models/NAME-ID.safetensors`.

use std::fs::File;
use std::path::{Path, PathBuf};

use super::source::Endpoints;
use super::HubError;

/// Settings read from the environment (and `--offline`).
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Hub and GitHub base addresses.
    pub endpoints: Endpoints,
    /// `HF_TOKEN` (or the token file `huggingface-cli login` writes), sent to the hub only.
    pub hf_token: Option<String>,
    /// The Hugging Face hub cache folder.
    pub hf_cache: PathBuf,
    /// tokenclip's own cache folder.
    pub cache: PathBuf,
    /// Why downloads are off (`HF_HUB_OFFLINE=1`, `--offline`), or `None` when allowed.
    pub offline: Option<String>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn truthy(v: &str) -> bool {
    matches!(v.trim().to_ascii_uppercase().as_str(), "1" | "ON" | "YES" | "TRUE")
}

fn home() -> PathBuf {
    dirs::home_dir().unwrap_or_else(|| PathBuf::from("."))
}

impl HubConfig {
    /// Reads `HF_ENDPOINT`, `HF_TOKEN`, `HF_HOME`, `HF_HUB_CACHE`, `HF_HUB_OFFLINE`,
    /// `TOKENCLIP_CACHE`, `TOKENCLIP_GITHUB_ENDPOINT` (and `XDG_CACHE_HOME`).
    pub fn from_env() -> Self {
        let hf_home = env("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
            env("XDG_CACHE_HOME").map(PathBuf::from).unwrap_or_else(|| home().join(".cache")).join("huggingface")
        });
        let hf_cache = env("HF_HUB_CACHE")
            .or_else(|| env("HUGGINGFACE_HUB_CACHE"))
            .map(PathBuf::from)
            .unwrap_or_else(|| hf_home.join("hub"));
        let token_file = env("HF_TOKEN_PATH").map(PathBuf::from).unwrap_or_else(|| hf_home.join("token"));
        let hf_token = env("HF_TOKEN").or_else(|| env("HUGGING_FACE_HUB_TOKEN")).or_else(|| {
            std::fs::read_to_string(token_file).ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
        });
        let cache = env("TOKENCLIP_CACHE")
            .map(PathBuf::from)
            .unwrap_or_else(|| dirs::cache_dir().unwrap_or_else(|| home().join(".cache")).join("tokenclip"));
        let mut endpoints = Endpoints::default();
        if let Some(e) = env("HF_ENDPOINT") {
            endpoints.hub = e.trim_end_matches('/').to_string();
        }
        if let Some(e) = env("TOKENCLIP_GITHUB_ENDPOINT") {
            endpoints.github = e.trim_end_matches('/').to_string();
        }
        let offline = env("HF_HUB_OFFLINE").filter(|v| truthy(v)).map(|v| format!("HF_HUB_OFFLINE={v}"));
        HubConfig { endpoints, hf_token, hf_cache, cache, offline }
    }

    /// Turns downloads off, saying why.
    pub fn with_offline(mut self, why: impl Into<String>) -> Self {
        self.offline = Some(why.into());
        self
    }

    /// `HF_HUB_CACHE/models--ORG--NAME`.
    pub fn hf_repo_dir(&self, repo: &str) -> PathBuf {
        self.hf_cache.join(hf_repo_folder(repo))
    }

    /// The lock file guarding a hub blob.
    pub fn hf_lock(&self, repo: &str, etag: &str) -> PathBuf {
        self.hf_cache.join(".locks").join(hf_repo_folder(repo)).join(format!("{etag}.lock"))
    }

    /// The lock file guarding `path` in tokenclip's cache.
    pub fn lock_for(&self, path: &Path) -> PathBuf {
        let rel = path.strip_prefix(&self.cache).unwrap_or(path);
        let name = rel.to_string_lossy().replace(['/', '\\', ':'], "--");
        self.cache.join(".locks").join(format!("{name}.lock"))
    }
}

/// `models--ORG--NAME`, the hub cache's folder for a model repository.
pub fn hf_repo_folder(repo: &str) -> String {
    format!("models--{}", repo.replace('/', "--"))
}

/// An exclusive lock on a file, held until dropped (the OS releases it if the process dies).
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

impl Lock {
    /// Takes the lock at `path` (creating it and its folder), waiting while another process holds
    /// it; `waiting` is called once if it has to wait.
    pub fn acquire(path: &Path, waiting: impl FnOnce()) -> Result<Lock, HubError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| HubError::io(dir, &e))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| HubError::io(path, &e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                waiting();
                file.lock().map_err(|e| HubError::io(path, &e))?;
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(HubError::io(path, &e)),
        }
        Ok(Lock { _file: file })
    }
}

/// Creates `dir` and its parents, with the cache-specific error message.
pub fn ensure_dir(dir: &Path) -> Result<(), HubError> {
    std::fs::create_dir_all(dir).map_err(|e| HubError::io(dir, &e))
}
