//! What `--model` means: a model file on disk, a URL of one, or a registry name (built-in, or
//! from `--registry FILE` / `TOKENCLIP_REGISTRY`).

use std::path::{Path, PathBuf};

use super::cache::HubConfig;
use super::convert::ensure_model;
use super::download::Reporter;
use super::fetch::Fetcher;
use super::registry::Registry;
use super::HubError;

/// What a `--model` value refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRef {
    /// A file on disk.
    File(PathBuf),
    /// An http(s) address of a model file.
    Url(String),
    /// A registry name.
    Name(String),
}

/// Reads which `spec` is: a URL, an existing file, a known name (in that order).
///
/// # Errors
/// [`HubError::UnknownModel`] listing the known names.
pub fn parse_ref(spec: &str, registry: &Registry) -> Result<ModelRef, HubError> {
    if spec.starts_with("https://") || spec.starts_with("http://") {
        return Ok(ModelRef::Url(spec.into()));
    }
    if Path::new(spec).exists() {
        return Ok(ModelRef::File(spec.into()));
    }
    if registry.get(spec).is_some() {
        return Ok(ModelRef::Name(spec.into()));
    }
    Err(HubError::UnknownModel { name: spec.into(), known: registry.names() })
}

/// The built-in registry plus a registry file (`file`, else `TOKENCLIP_REGISTRY`), whose names
/// are added or replace built-in ones.
///
/// # Errors
/// A registry file that cannot be read or parsed (line and field named).
pub fn load_registry(file: Option<&Path>) -> Result<Registry, HubError> {
    let mut r = Registry::builtin()?;
    let env = std::env::var_os("TOKENCLIP_REGISTRY").filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(path) = file.map(Path::to_path_buf).or(env) {
        let text = std::fs::read_to_string(&path).map_err(|e| HubError::io(&path, &e))?;
        r.merge(Registry::parse(&text, &path.display().to_string())?);
    }
    Ok(r)
}

/// The model file `spec` refers to, downloading and converting what is not cached yet.
///
/// # Errors
/// As [`parse_ref`], downloads and conversion.
pub fn resolve_model(
    spec: &str,
    registry: &Registry,
    cfg: &HubConfig,
    report: &dyn Reporter,
) -> Result<PathBuf, crate::Error> {
    match parse_ref(spec, registry)? {
        ModelRef::File(p) => Ok(p),
        ModelRef::Url(u) => Ok(Fetcher::new(cfg, report).fetch_url(&u)?),
        ModelRef::Name(n) => {
            let entry =
                registry.get(&n).ok_or_else(|| HubError::UnknownModel { name: n.clone(), known: registry.names() })?;
            ensure_model(&Fetcher::new(cfg, report), entry, report)
        }
    }
}
