//! CLIP fixtures: decompressing the committed checkpoints, importing them, reading the expected
//! tensors that tools/make_clip_fixtures.py wrote with open_clip / transformers.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tokenclip::clip::config::WeightDType;
use tokenclip::clip::import::{import_clip, ImportOptions};

/// `tests/fixtures/<name>`.
pub fn fixture_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// A fresh scratch folder for one test.
pub fn scratch(test: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tokenclip-test-{}-{n}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Decompresses fixture `name` (`….gz`) into `dir`, keeping its file name minus `.gz`; copies
/// the config files the hub ships beside a checkpoint too: a sibling `config.json` (Hugging
/// Face) or `open_clip_config.json` (open_clip), or `STEM.open_clip_config.json` as
/// `open_clip_config.json` (a fixture folder holding several checkpoints).
pub fn gunzip(name: &str, dir: &Path) -> PathBuf {
    let src = fixture_path(name);
    let out = dir.join(src.file_name().unwrap().to_string_lossy().trim_end_matches(".gz"));
    let mut r = flate2::read::GzDecoder::new(std::fs::File::open(&src).unwrap());
    let mut w = std::fs::File::create(&out).unwrap();
    std::io::copy(&mut r, &mut w).unwrap();
    for sidecar in ["config.json", "open_clip_config.json"] {
        let cfg = src.with_file_name(sidecar);
        if cfg.exists() {
            std::fs::copy(cfg, dir.join(sidecar)).unwrap();
        }
    }
    let file = src.file_name().unwrap().to_string_lossy().into_owned();
    let stem = file.split('.').next().unwrap_or_default();
    let own = src.with_file_name(format!("{stem}.open_clip_config.json"));
    if own.exists() {
        std::fs::copy(own, dir.join("open_clip_config.json")).unwrap();
    }
    out
}

/// Imports `src` into `dir/<stem>.<dtype>.safetensors`.
pub fn import(src: &Path, dir: &Path, dtype: WeightDType, vision_only: bool) -> PathBuf {
    let out = dir.join(format!("model.{dtype:?}.{vision_only}.safetensors"));
    let mut opts = ImportOptions::default();
    opts.dtype = dtype;
    opts.vision_only = vision_only;
    import_clip(src, &out, &opts).unwrap_or_else(|e| panic!("import of {} failed: {e}", src.display()));
    out
}

/// The expected tensors (f32) and the metadata of `clip_tiny_expected.safetensors`.
pub struct Expected {
    /// Tensors by name: data and shape.
    pub tensors: HashMap<String, (Vec<f32>, Vec<usize>)>,
    /// Texts, as given to open_clip.
    pub texts: Vec<String>,
    /// open_clip's token ids per text (77 each).
    pub tokens: Vec<Vec<u32>>,
    /// Image paths relative to ../shared/data.
    pub images: Vec<String>,
}

impl Expected {
    /// Loads the fixture.
    pub fn load() -> Self {
        Self::load_from("clip_tiny_expected.safetensors")
    }

    /// Loads an expected-tensors fixture of the same layout (`name` under tests/fixtures).
    pub fn load_from(name: &str) -> Self {
        let bytes = std::fs::read(fixture_path(name)).unwrap();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let tensors = st
            .tensors()
            .into_iter()
            .map(|(n, v)| {
                let data = v.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect();
                (n, (data, v.shape().to_vec()))
            })
            .collect();
        let m = meta.metadata().clone().unwrap();
        Expected {
            tensors,
            texts: serde_json::from_str(&m["texts"]).unwrap(),
            tokens: serde_json::from_str(&m["tokens"]).unwrap(),
            images: serde_json::from_str(&m["images"]).unwrap(),
        }
    }

    /// One tensor.
    pub fn get(&self, name: &str) -> &(Vec<f32>, Vec<usize>) {
        self.tensors.get(name).unwrap_or_else(|| panic!("no `{name}` in the CLIP fixture"))
    }

    /// Row `i` of a 2-D tensor.
    pub fn row(&self, name: &str, i: usize) -> &[f32] {
        let (data, shape) = self.get(name);
        &data[i * shape[1]..(i + 1) * shape[1]]
    }
}

/// ‖got − want‖ / ‖want‖ in f64.
pub fn rel_l2(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let (mut d, mut n) = (0.0f64, 0.0f64);
    for (&g, &w) in got.iter().zip(want) {
        d += (f64::from(g) - f64::from(w)).powi(2);
        n += f64::from(w).powi(2);
    }
    (d / n.max(1e-300)).sqrt()
}

/// Asserts a relative L2 error at most `tol`, printing the measured value.
pub fn assert_rel_l2(what: &str, got: &[f32], want: &[f32], tol: f64) {
    let e = rel_l2(got, want);
    eprintln!("{what}: relative L2 error {e:.2e} (tolerance {tol:.0e})");
    assert!(e <= tol, "{what}: relative L2 error {e:.3e} > {tol:.0e}");
}

/// `../shared/data`, or a panic saying it is missing.
pub fn shared_data() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    assert!(p.is_dir(), "{} is missing: these tests read its images (see README, Tests)", p.display());
    p
}
