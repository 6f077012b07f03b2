//! What can go wrong between a model name and a model file.

/// Errors of the model registry, downloads and the caches.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HubError {
    /// A registry file that cannot be parsed or says something impossible.
    #[error("registry {file}{}: {what}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Registry {
        /// The registry file (`built-in` for the compiled-in one).
        file: String,
        /// 1-based line of the problem, when known.
        line: Option<usize>,
        /// What is wrong, naming the field.
        what: String,
    },
    /// `--model` names neither a file, a URL nor a known model.
    #[error("{name:?} is not a model file, a URL or a known model name; known names: {}", known.join(", "))]
    UnknownModel {
        /// What was asked for.
        name: String,
        /// Every name the registries know.
        known: Vec<String>,
    },
    /// A download failed for good (after retries), or the server refused it.
    #[error("cannot download {url}: {what}")]
    Network {
        /// The address.
        url: String,
        /// Why (the server's answer or the connection error), and what to do.
        what: String,
    },
    /// The server cannot be reached (no network, a refused connection, a connection that keeps
    /// breaking): nothing unverified is left under a final name in the cache.
    #[error(
        "cannot download {url}: {what}. Nothing half-written is kept in the cache ({cache}); on a machine \
         without network, run `tokenclip fetch {name}` where there is one and copy the cache folder over, \
         then work with --offline (or HF_HUB_OFFLINE=1)"
    )]
    Unreachable {
        /// The address.
        url: String,
        /// The connection error.
        what: String,
        /// The cache folder the file would go to.
        cache: String,
        /// The model it is for.
        name: String,
    },
    /// The file is needed, the cache does not have it, and the network may not be used.
    #[error(
        "{what} is not in the cache ({cache}) and downloads are off ({why}); \
         run `tokenclip fetch {name}` on a machine with network and copy the cache, or allow downloads \
         (it would come from {url})"
    )]
    Offline {
        /// The file wanted.
        what: String,
        /// The model name, for the `fetch` hint.
        name: String,
        /// Where it would be downloaded from.
        url: String,
        /// The cache folder looked in.
        cache: String,
        /// Which setting turned downloads off.
        why: String,
    },
    /// A downloaded or cached file is not what its source promises (and was deleted), or the
    /// server describes another file than the registry pins.
    #[error("{what} from {source_desc}: {problem}")]
    Verify {
        /// The file.
        what: String,
        /// Where it came from.
        source_desc: String,
        /// Expected against got.
        problem: String,
    },
    /// A URL served something that is not a model (an HTML page, an empty body).
    #[error("{url} does not serve a model file: {what}")]
    NotAModel {
        /// The address.
        url: String,
        /// What came instead.
        what: String,
    },
    /// A cache file or folder that cannot be read or written (a full disk, no permission).
    #[error("{path}: {what}")]
    Io {
        /// The file or folder.
        path: String,
        /// The system's message, and what to do.
        what: String,
    },
}

impl HubError {
    /// An I/O error on `path`, with a hint for the common causes.
    pub fn io(path: &std::path::Path, e: &std::io::Error) -> Self {
        let hint = match e.kind() {
            std::io::ErrorKind::StorageFull => {
                " (the disk is full: free some space, or point TOKENCLIP_CACHE / HF_HOME elsewhere)"
            }
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem => {
                " (the cache folder cannot be written: set TOKENCLIP_CACHE / HF_HOME to a folder you own)"
            }
            _ => "",
        };
        HubError::Io { path: path.display().to_string(), what: format!("{e}{hint}") }
    }
}
