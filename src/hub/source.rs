//! Where a file of a named model comes from, and how it is checked.

use serde::Serialize;

/// The Hugging Face hub, unless `HF_ENDPOINT` says otherwise.
pub const HF_ENDPOINT: &str = "https://huggingface.co";
/// GitHub's raw file server, unless `TOKENCLIP_GITHUB_ENDPOINT` says otherwise.
pub const GITHUB_ENDPOINT: &str = "https://raw.githubusercontent.com";

/// A hash a file must have.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Digest {
    /// SHA-256 of the bytes, lower-case hex (what the hub's LFS etag is).
    Sha256(String),
    /// A git blob id: SHA-1 of `blob SIZE\0` + the bytes, lower-case hex.
    GitBlob(String),
}

impl Digest {
    /// `sha256:…` or `git-blob:…`, for messages.
    pub fn describe(&self) -> String {
        match self {
            Digest::Sha256(h) => format!("sha256 {h}"),
            Digest::GitBlob(h) => format!("git blob {h}"),
        }
    }
}

/// One file of a model and where it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileSource {
    /// A file in a Hugging Face hub model repository at a revision.
    Hub {
        /// `org/name`.
        repo: String,
        /// A commit (pinned) or a branch/tag name.
        revision: String,
        /// Path of the file in the repository.
        file: String,
        /// Size in bytes, if pinned.
        size: Option<u64>,
        /// SHA-256, if pinned (else the hub's own is used).
        sha256: Option<String>,
    },
    /// A file in a GitHub repository at a commit.
    GitHub {
        /// `owner/name`.
        repo: String,
        /// The commit.
        commit: String,
        /// Path of the file in the repository.
        path: String,
        /// Size in bytes, if pinned.
        size: Option<u64>,
        /// The hash it must have.
        digest: Digest,
    },
    /// Any HTTP(S) address.
    Url {
        /// The address.
        url: String,
        /// Size in bytes, if pinned.
        size: Option<u64>,
        /// The hash it must have.
        digest: Digest,
    },
}

/// Addresses the sources are fetched from (mirrors and the tests' fake hub replace them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Base of hub URLs (`HF_ENDPOINT`).
    pub hub: String,
    /// Base of GitHub raw URLs (`TOKENCLIP_GITHUB_ENDPOINT`).
    pub github: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints { hub: HF_ENDPOINT.into(), github: GITHUB_ENDPOINT.into() }
    }
}

impl FileSource {
    /// The address the file is downloaded from.
    pub fn url(&self, ep: &Endpoints) -> String {
        match self {
            FileSource::Hub { repo, revision, file, .. } => {
                format!("{}/{repo}/resolve/{revision}/{file}", ep.hub.trim_end_matches('/'))
            }
            FileSource::GitHub { repo, commit, path, .. } => {
                format!("{}/{repo}/{commit}/{path}", ep.github.trim_end_matches('/'))
            }
            FileSource::Url { url, .. } => url.clone(),
        }
    }

    /// The file's name (its last path segment).
    pub fn file_name(&self) -> &str {
        let path = match self {
            FileSource::Hub { file, .. } => file.as_str(),
            FileSource::GitHub { path, .. } => path.as_str(),
            FileSource::Url { url, .. } => url.split(['?', '#']).next().unwrap_or(url),
        };
        path.rsplit('/').find(|s| !s.is_empty()).unwrap_or("download")
    }

    /// The pinned size, if any.
    pub fn size(&self) -> Option<u64> {
        match self {
            FileSource::Hub { size, .. } | FileSource::GitHub { size, .. } | FileSource::Url { size, .. } => *size,
        }
    }

    /// The pinned hash, if any (a hub file without one is checked against the hub's).
    pub fn digest(&self) -> Option<Digest> {
        match self {
            FileSource::Hub { sha256, .. } => sha256.clone().map(Digest::Sha256),
            FileSource::GitHub { digest, .. } | FileSource::Url { digest, .. } => Some(digest.clone()),
        }
    }

    /// "hub timm/x@81e38ef…: open_clip_model.safetensors", for messages and `tokenclip models`.
    pub fn describe(&self) -> String {
        let short = |c: &str| c.chars().take(12).collect::<String>();
        match self {
            FileSource::Hub { repo, revision, file, .. } => format!("Hugging Face {repo}@{}: {file}", short(revision)),
            FileSource::GitHub { repo, commit, path, .. } => format!("GitHub {repo}@{}: {path}", short(commit)),
            FileSource::Url { url, .. } => url.clone(),
        }
    }
}

/// True for a full 40-hex-digit commit id.
pub fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
