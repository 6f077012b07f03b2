//! Named models, fetched on first use: a registry of names ([`registry`]), where their files
//! come from ([`source`]), how downloads are checked ([`verify`]), and natively the download,
//! the caches and the conversion into a model file ([`cache`], [`http`], [`fetch`],
//! [`convert`], [`resolve`]). The browser fetches and converts the same registry's files in
//! `web::named`.
//!
//! Natively, hub files go to the Hugging Face cache layout (`HF_HOME`), so weights that
//! open_clip already downloaded are used as they are; GitHub files, plain URLs and converted
//! model files go to tokenclip's own cache (`TOKENCLIP_CACHE`).

mod error;
pub mod registry;
pub mod source;
pub mod verify;

#[cfg(not(target_arch = "wasm32"))]
pub mod cache;
#[cfg(not(target_arch = "wasm32"))]
pub mod convert;
#[cfg(not(target_arch = "wasm32"))]
pub mod download;
#[cfg(not(target_arch = "wasm32"))]
pub mod fetch;
#[cfg(not(target_arch = "wasm32"))]
pub mod http;
#[cfg(not(target_arch = "wasm32"))]
pub mod resolve;

pub use error::HubError;
pub use registry::{ModelEntry, PromptsSpec, Registry, DEFAULT_MODEL};
pub use source::{Digest, Endpoints, FileSource};
