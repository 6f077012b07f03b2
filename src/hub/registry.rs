//! Named models: the built-in list (`registry.toml`, compiled in) and registry files that add
//! or replace names. The format is documented at the top of `registry.toml`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::source::{is_commit, Digest, FileSource};
use super::HubError;
use crate::clip::config::{Activation, DetectionConfig, Mix, ScoreMode, WeightDType};
use crate::clip::import::{ImportOptions, PromptSource};

/// The compiled-in registry.
pub const BUILTIN: &str = include_str!("registry.toml");
/// The model `--model` defaults to.
pub const DEFAULT_MODEL: &str = "anomalyclip";
/// Bumped when conversion changes what it writes, so cached conversions are redone.
const CONVERSION_VERSION: u32 = 1;

/// Where the text embeddings of a named model come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptsSpec {
    /// Learned prompts in a file (an AnomalyCLIP `.pth`, a prompts safetensors).
    File(FileSource),
    /// The training-free ensemble for a class name.
    Ensemble(String),
}

/// `tokenclip import` settings of a named model; unset fields keep import's defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportSettings {
    /// Input size S.
    pub image_size: Option<usize>,
    /// First DPAM layer (1-indexed).
    pub dpam_start: Option<usize>,
    /// Feature layers (1-indexed).
    pub feature_layers: Option<Vec<usize>>,
    /// Storage type of the weight matrices.
    pub dtype: Option<WeightDType>,
    /// The MLP activation (`quick_gelu` or `gelu`), when the checkpoint does not say itself.
    pub activation: Option<Activation>,
    /// Leave the text tower out.
    #[serde(default)]
    pub vision_only: bool,
    /// Plan entries kept per token.
    pub top_k: Option<usize>,
    /// Entropic regularisation ε.
    pub epsilon: Option<f32>,
    /// Sinkhorn iteration cap.
    pub sinkhorn_iters: Option<u32>,
    /// Sinkhorn tolerance.
    pub sinkhorn_tol: Option<f32>,
    /// Subspace mixing.
    pub mix: Option<Mix>,
    /// Image score mode.
    pub score: Option<ScoreMode>,
    /// Softmax temperature τ.
    pub temperature: Option<f32>,
    /// Gaussian σ of the map.
    pub sigma: Option<f32>,
}

impl ImportSettings {
    /// The import options these settings (and `prompts`) describe.
    pub fn options(&self, prompts: PromptSource) -> ImportOptions {
        let d = DetectionConfig::default();
        let detection = DetectionConfig {
            temperature: self.temperature.unwrap_or(d.temperature),
            sigma: self.sigma.unwrap_or(d.sigma),
            top_k: self.top_k.unwrap_or(d.top_k),
            epsilon: self.epsilon.unwrap_or(d.epsilon),
            sinkhorn_iters: self.sinkhorn_iters.unwrap_or(d.sinkhorn_iters),
            sinkhorn_tol: self.sinkhorn_tol.unwrap_or(d.sinkhorn_tol),
            mix: self.mix.unwrap_or(d.mix),
            score: self.score.unwrap_or(d.score),
            assign: d.assign,
        };
        ImportOptions {
            dtype: self.dtype.unwrap_or_default(),
            image_size: self.image_size,
            dpam_start: self.dpam_start,
            feature_layers: self.feature_layers.clone(),
            vision_only: self.vision_only,
            prompts: Some(prompts),
            detection,
            activation: self.activation,
        }
    }
}

/// One named model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelEntry {
    /// Its name.
    pub name: String,
    /// One line for `tokenclip models`.
    pub description: String,
    /// Licence of its weights and prompts.
    pub licence: Option<String>,
    /// Suggested on small machines and in the browser.
    pub light: bool,
    /// The CLIP checkpoint.
    pub clip: FileSource,
    /// The text embeddings' source.
    pub prompts: PromptsSpec,
    /// Import settings.
    pub import: ImportSettings,
    /// `built-in` or the registry file it came from.
    #[serde(skip)]
    pub origin: String,
}

impl ModelEntry {
    /// The files to download, CLIP first.
    pub fn files(&self) -> Vec<&FileSource> {
        let mut v = vec![&self.clip];
        if let PromptsSpec::File(f) = &self.prompts {
            v.push(f);
        }
        v
    }

    /// Total pinned download size (`None` if a size is not pinned).
    pub fn download_size(&self) -> Option<u64> {
        self.files().iter().map(|f| f.size()).sum()
    }

    /// A short hash of everything that decides the converted file (sources, hashes, settings,
    /// and `variant`: "native" or "web"), naming the converted file in the cache.
    pub fn conversion_id(&self, variant: &str) -> String {
        let key = serde_json::json!({
            "v": CONVERSION_VERSION, "variant": variant, "clip": self.clip, "prompts": self.prompts, "import": self.import,
        });
        super::verify::sha256_hex(key.to_string().as_bytes())[..16].to_string()
    }
}

/// Every known model name and its entry.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    entries: BTreeMap<String, ModelEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileToml {
    #[serde(default)]
    model: BTreeMap<String, Spanned<EntryToml>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryToml {
    description: String,
    licence: Option<String>,
    #[serde(default)]
    light: bool,
    clip: Spanned<SourceToml>,
    prompts: Option<Spanned<SourceToml>>,
    ensemble: Option<String>,
    #[serde(default)]
    import: ImportSettings,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceToml {
    hub: Option<String>,
    revision: Option<String>,
    file: Option<String>,
    github: Option<String>,
    commit: Option<String>,
    path: Option<String>,
    url: Option<String>,
    size: Option<u64>,
    sha256: Option<String>,
    git_blob: Option<String>,
}

impl Registry {
    /// The compiled-in models.
    pub fn builtin() -> Result<Self, HubError> {
        Self::parse(BUILTIN, "built-in")
    }

    /// Parses a registry file's text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, HubError> {
        let line_of = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let err = |line: Option<usize>, what: String| HubError::Registry { file: origin.into(), line, what };
        let parsed: FileToml = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(s.start));
            err(line, e.message().trim().to_string())
        })?;
        let mut entries = BTreeMap::new();
        for (name, entry) in parsed.model {
            let line = Some(line_of(entry.span().start));
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
                return Err(err(line, format!("model name {name:?} may only hold letters, digits, `-`, `_` and `.`")));
            }
            let e = entry.into_inner();
            let at = |s: &Spanned<SourceToml>| Some(line_of(s.span().start));
            let clip = source(e.clip.get_ref()).map_err(|w| err(at(&e.clip), format!("model.{name}.clip: {w}")))?;
            let prompts = match (&e.prompts, e.ensemble) {
                (Some(p), None) => PromptsSpec::File(
                    source(p.get_ref()).map_err(|w| err(at(p), format!("model.{name}.prompts: {w}")))?,
                ),
                (None, Some(class)) if !class.trim().is_empty() => PromptsSpec::Ensemble(class),
                (None, Some(_)) => return Err(err(line, format!("model.{name}.ensemble: the class name is empty"))),
                (Some(_), Some(_)) => {
                    return Err(err(line, format!("model.{name}: give `prompts` or `ensemble`, not both")));
                }
                (None, None) => {
                    return Err(err(
                        line,
                        format!("model.{name}: needs `prompts = {{ … }}` (learned prompts) or `ensemble = \"CLASS\"`"),
                    ))
                }
            };
            let entry = ModelEntry {
                name: name.clone(),
                description: e.description,
                licence: e.licence,
                light: e.light,
                clip,
                prompts,
                import: e.import,
                origin: origin.into(),
            };
            entries.insert(name, entry);
        }
        Ok(Registry { entries })
    }

    /// Adds `other`'s names, replacing entries of the same name.
    pub fn merge(&mut self, other: Registry) {
        self.entries.extend(other.entries);
    }

    /// The entry named `name`.
    pub fn get(&self, name: &str) -> Option<&ModelEntry> {
        self.entries.get(name)
    }

    /// Every entry, by name.
    pub fn entries(&self) -> impl Iterator<Item = &ModelEntry> {
        self.entries.values()
    }

    /// Every name.
    pub fn names(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }
}

fn hex_of(len: usize, what: &str, v: &str) -> Result<String, String> {
    if v.len() == len && v.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(v.to_ascii_lowercase())
    } else {
        Err(format!("`{what}` must be {len} hex digits, got {v:?}"))
    }
}

fn source(s: &SourceToml) -> Result<FileSource, String> {
    let sha256 = s.sha256.as_deref().map(|h| hex_of(64, "sha256", h)).transpose()?;
    let git_blob = s.git_blob.as_deref().map(|h| hex_of(40, "git_blob", h)).transpose()?;
    let need = |v: &Option<String>, field: &str, with: &str| {
        v.clone().filter(|x| !x.is_empty()).ok_or_else(|| format!("`{field}` is required with `{with}`"))
    };
    let unused = |fields: &[(&str, bool)], with: &str| match fields.iter().find(|(_, set)| *set) {
        Some((f, _)) => Err(format!("`{f}` does not go with `{with}`")),
        None => Ok(()),
    };
    let repo_name = |r: &str, field: &str| {
        let ok = r.split('/').count() == 2 && r.split('/').all(|p| !p.is_empty() && !p.contains(['?', '#', ' ']));
        if ok {
            Ok(r.to_string())
        } else {
            Err(format!("`{field}` must be \"owner/name\", got {r:?}"))
        }
    };
    let digest = |with: &str| match (&sha256, &git_blob) {
        (Some(h), None) => Ok(Digest::Sha256(h.clone())),
        (None, Some(h)) => Ok(Digest::GitBlob(h.clone())),
        (Some(_), Some(_)) => Err("give `sha256` or `git_blob`, not both".to_string()),
        (None, None) => Err(format!("a `{with}` source needs `sha256` (or `git_blob`) so the download can be checked")),
    };
    match (&s.hub, &s.github, &s.url) {
        (Some(repo), None, None) => {
            unused(
                &[("commit", s.commit.is_some()), ("path", s.path.is_some()), ("git_blob", git_blob.is_some())],
                "hub",
            )?;
            Ok(FileSource::Hub {
                repo: repo_name(repo, "hub")?,
                revision: need(&s.revision, "revision", "hub")?,
                file: need(&s.file, "file", "hub")?,
                size: s.size,
                sha256,
            })
        }
        (None, Some(repo), None) => {
            unused(&[("revision", s.revision.is_some()), ("file", s.file.is_some())], "github")?;
            let commit = need(&s.commit, "commit", "github")?;
            if !is_commit(&commit) {
                return Err(format!("`commit` must be a full 40-hex-digit commit id, got {commit:?}"));
            }
            Ok(FileSource::GitHub {
                repo: repo_name(repo, "github")?,
                commit: commit.to_ascii_lowercase(),
                path: need(&s.path, "path", "github")?,
                size: s.size,
                digest: digest("github")?,
            })
        }
        (None, None, Some(url)) => {
            let fields = [
                ("revision", s.revision.is_some()),
                ("file", s.file.is_some()),
                ("commit", s.commit.is_some()),
                ("path", s.path.is_some()),
            ];
            unused(&fields, "url")?;
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(format!("`url` must start with https:// or http://, got {url:?}"));
            }
            Ok(FileSource::Url { url: url.clone(), size: s.size, digest: digest("url")? })
        }
        (None, None, None) => Err("needs one of `hub`, `github` or `url`".into()),
        _ => Err("give only one of `hub`, `github` and `url`".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_registry_parses_with_the_pinned_sources() {
        let r = Registry::builtin().unwrap();
        let a = r.get(DEFAULT_MODEL).unwrap();
        assert_eq!(a.download_size(), Some(1_711_828_444 + 22_631_975));
        assert!(matches!(&a.prompts, PromptsSpec::File(FileSource::GitHub { digest: Digest::GitBlob(_), .. })));
        assert_eq!(a.import.image_size, Some(518));
        assert!(r.entries().any(|e| e.light));
        assert_ne!(a.conversion_id("native"), a.conversion_id("web"));
    }

    #[test]
    fn errors_name_the_line_and_the_field() {
        let text = "[model.x]\ndescription = \"d\"\nensemble = \"object\"\nclip = { hub = \"a/b\", file = \"f\" }\n";
        let e = Registry::parse(text, "my.toml").unwrap_err().to_string();
        assert!(e.contains("my.toml, line 4") && e.contains("`revision` is required with `hub`"), "{e}");
        let e = Registry::parse("[model.x]\ndescripton = 1\n", "r.toml").unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("descripton"), "{e}");
        let e =
            Registry::parse("[model.x]\ndescription = \"d\"\nclip = { url = \"http://h/f\" }\nensemble = \"o\"\n", "r")
                .unwrap_err()
                .to_string();
        assert!(e.contains("line 3") && e.contains("needs `sha256`"), "{e}");
        let e = Registry::parse("[model.\"a/b\"]\n", "r").unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
    }
}
