//! A named model's files → a tokenclip model file in the cache, once: exactly what
//! `tokenclip import --clip CLIP --prompts PROMPTS [settings]` writes, under a name that hashes
//! the sources and settings (`models/NAME-ID.safetensors`), so a changed registry entry is
//! converted again and an unchanged one never is.

use std::path::PathBuf;
use std::time::Instant;

use super::cache::{ensure_dir, HubConfig, Lock};
use super::fetch::Fetcher;
use super::registry::{ModelEntry, PromptsSpec};
use crate::clip::import::{import_clip, PromptSource};

/// Where the converted file of `entry` lives (whether or not it exists yet).
pub fn converted_path(cfg: &HubConfig, entry: &ModelEntry) -> PathBuf {
    cfg.cache.join("models").join(format!("{}-{}.safetensors", entry.name, entry.conversion_id("native")))
}

/// The converted model file of `entry`: from the cache, or fetched and converted now (files
/// downloaded and verified as needed). Two processes asking at once convert it once.
///
/// # Errors
/// Download, verification and cache errors ([`super::HubError`]), and import errors for a
/// checkpoint that is not what the entry says.
pub fn ensure_model(
    f: &Fetcher,
    entry: &ModelEntry,
    report: &dyn super::download::Reporter,
) -> Result<PathBuf, crate::Error> {
    let out = converted_path(f.cfg, entry);
    if out.exists() {
        return Ok(out);
    }
    if let Some(dir) = out.parent() {
        ensure_dir(dir)?;
    }
    let _lock = Lock::acquire(&f.cfg.lock_for(&out), || {
        report.note(&format!("waiting for another process converting {}", entry.name))
    })?;
    if out.exists() {
        return Ok(out);
    }
    let size = entry.download_size().map(|b| format!("{:.0} MB, ", b as f64 / 1e6)).unwrap_or_default();
    let sources: Vec<String> = entry.files().iter().map(|s| s.describe()).collect();
    let caches = format!("{} and {}", f.cfg.hf_cache.display(), f.cfg.cache.display());
    report.note(&match &f.cfg.offline {
        None => format!(
            "{} is not converted yet: fetching its files ({size}{}) into {caches}, once",
            entry.name,
            sources.join("; ")
        ),
        Some(_) => {
            format!("{} is not converted yet: looking for its files ({}) in {caches}", entry.name, sources.join("; "))
        }
    });
    let clip = f.fetch(&entry.clip, &entry.name)?;
    let prompts = match &entry.prompts {
        PromptsSpec::File(src) => PromptSource::File(f.fetch(src, &entry.name)?),
        PromptsSpec::Ensemble(class_name) => PromptSource::Ensemble { class_name: class_name.clone() },
    };
    report.note(&format!("converting {} into a tokenclip model file (once; later runs start from it)", entry.name));
    let began = Instant::now();
    import_clip(&clip, &out, &entry.import.options(prompts))?;
    report.note(&format!("converted {} in {:.1} s: {}", entry.name, began.elapsed().as_secs_f64(), out.display()));
    Ok(out)
}
