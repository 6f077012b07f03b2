//! Detection fixtures (tools/make_detect_fixtures.py: the METHOD.md reference in PyTorch on
//! open_clip modules, random weights and prompts): the tiny CLIP, prompt files, and the expected
//! stages of every variant.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tokenclip::clip::config::{DetectionConfig, Mix, ScoreMode};
use tokenclip::clip::import::{import_clip, ImportOptions, PromptSource};

use super::clip::{fixture_path, gunzip};

/// `expected.safetensors`: tensors (f32) and parsed metadata.
pub struct DetectFixture {
    /// Tensors by name: data and shape.
    pub tensors: HashMap<String, (Vec<f32>, Vec<usize>)>,
    /// `variants` metadata: name → its configuration.
    pub variants: serde_json::Map<String, Value>,
    /// Image paths relative to ../shared/data.
    pub images: Vec<String>,
    /// Input size S.
    pub size: usize,
}

impl DetectFixture {
    /// Reads `tests/fixtures/detect_tiny/expected.safetensors`.
    pub fn load() -> Self {
        let bytes = std::fs::read(fixture_path("detect_tiny/expected.safetensors")).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let tensors = st
            .tensors()
            .into_iter()
            .map(|(name, view)| {
                let data = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
                (name, (data, view.shape().to_vec()))
            })
            .collect();
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
        let meta = meta.metadata().clone().unwrap();
        let json = |k: &str| serde_json::from_str::<Value>(&meta[k]).unwrap();
        DetectFixture {
            tensors,
            variants: json("variants").as_object().unwrap().clone(),
            images: serde_json::from_value(json("images")).unwrap(),
            size: meta["image_size"].parse().unwrap(),
        }
    }

    /// Tensor `name`.
    #[track_caller]
    pub fn get(&self, name: &str) -> &(Vec<f32>, Vec<usize>) {
        self.tensors.get(name).unwrap_or_else(|| panic!("fixture has no tensor `{name}`"))
    }

    /// Variant `v`'s field `key`.
    pub fn field(&self, v: &str, key: &str) -> &Value {
        &self.variants[v][key]
    }

    /// Variant `v`'s feature layers.
    pub fn feature_layers(&self, v: &str) -> Vec<usize> {
        serde_json::from_value(self.field(v, "feature_layers").clone()).unwrap()
    }
}

/// The prompt source of a variant's `prompts` field (`m4`, `m1`, `ensemble:object`, …).
pub fn prompt_source(prompts: &str) -> PromptSource {
    match prompts {
        "m4" => PromptSource::File(fixture_path("detect_tiny/prompts_m4.safetensors")),
        "m1" => PromptSource::File(fixture_path("detect_tiny/anomalyclip_m1.pth")),
        other => {
            let class = other.strip_prefix("ensemble").map(|c| c.trim_start_matches([':', '.'])).unwrap_or("object");
            PromptSource::Ensemble { class_name: if class.is_empty() { "object".into() } else { class.into() } }
        }
    }
}

/// Decompresses the tiny CLIP into `dir` (once per folder).
pub fn tiny_clip(dir: &Path) -> PathBuf {
    let p = dir.join("clip.safetensors");
    if !p.exists() {
        gunzip("detect_tiny/clip.safetensors.gz", dir);
    }
    p
}

/// Imports the tiny CLIP with variant `v`'s prompts and configuration into `dir/v.safetensors`.
pub fn import_variant(fx: &DetectFixture, v: &str, dir: &Path, vision_only: bool) -> PathBuf {
    let src = tiny_clip(dir);
    let out = dir.join(format!("{v}.{vision_only}.safetensors"));
    let f = |k: &str| fx.field(v, k).clone();
    let mut opts = ImportOptions::default();
    opts.image_size = Some(fx.size);
    opts.dpam_start = Some(f("dpam_start").as_u64().unwrap() as usize);
    opts.feature_layers = Some(fx.feature_layers(v));
    opts.vision_only = vision_only;
    opts.prompts = Some(prompt_source(f("prompts").as_str().unwrap()));
    opts.detection = DetectionConfig {
        temperature: f("temperature").as_f64().unwrap() as f32,
        sigma: f("sigma").as_f64().unwrap() as f32,
        top_k: f("top_k").as_u64().unwrap() as usize,
        epsilon: f("epsilon").as_f64().unwrap() as f32,
        sinkhorn_iters: f("sinkhorn_iters").as_u64().unwrap() as u32,
        sinkhorn_tol: f("sinkhorn_tol").as_f64().unwrap() as f32,
        mix: f("mix").as_str().unwrap().parse::<Mix>().unwrap(),
        score: f("score").as_str().unwrap().parse::<ScoreMode>().unwrap(),
        assign: Default::default(),
    };
    import_clip(&src, &out, &opts).unwrap_or_else(|e| panic!("import of variant {v} failed: {e}"));
    out
}

/// Largest absolute difference.
pub fn max_abs(got: &[f32], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len(), "lengths differ");
    got.iter().zip(want).map(|(a, b)| (f64::from(*a) - f64::from(*b)).abs()).fold(0.0, f64::max)
}

/// Asserts `max |got − want| ≤ tol`, printing the measured value.
#[track_caller]
pub fn assert_max_abs(what: &str, got: &[f32], want: &[f32], tol: f64) {
    let e = max_abs(got, want);
    eprintln!("{what}: max abs difference {e:.2e} (tolerance {tol:.0e})");
    assert!(e <= tol, "{what}: max abs difference {e:.3e} > {tol:.0e}");
}
