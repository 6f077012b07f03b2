//! Detection against the PyTorch reference (tools/make_detect_fixtures.py, METHOD.md A2–A4, B,
//! C on open_clip modules with random weights and prompts), on both backends, through the real
//! importer: every stage of every variant (patch and global embeddings, cost, Sinkhorn plan, top-K
//! weights, token probabilities, raw and smoothed maps, image score), so a failure names the first
//! stage that differs. Also: text embeddings from all three prompt sources, and the M = 1 case
//! equal to plain AnomalyCLIP scoring.

mod common;

use common::clip::scratch;
use common::detect::{assert_max_abs, import_variant, DetectFixture};
use tokenclip::backend::{Backend, TensorInfo};
use tokenclip::clip::model_file::{ModelFile, TEXT_ABNORMAL, TEXT_NORMAL};
use tokenclip::Detector;

/// Tolerances per stage (absolute). The targets are 1e-3 on maps and 1e-4 on scores;
/// these are tighter, to catch drift early.
const TOL_EMBEDDING: f64 = 1e-5;
const TOL_PLAN: f64 = 1e-5;
const TOL_PROB: f64 = 1e-4;
const TOL_MAP: f64 = 1e-4;
const TOL_SCORE: f64 = 1e-5;

fn read<B: Backend>(be: &B, t: &B::Tensor) -> Vec<f32> {
    pollster::block_on(be.read(t)).unwrap()
}

fn variant_matches_reference<B: Backend>(be: &B, v: &str) {
    let fx = DetectFixture::load();
    let dir = scratch(&format!("parity-detect-{v}"));
    let model = import_variant(&fx, v, &dir, false);
    let file = ModelFile::open(&model).unwrap();
    let det = Detector::load(&file, &file.config, be).unwrap();
    let layers = fx.feature_layers(v);
    for i in 0..fx.images.len() {
        let (pixels, shape) = fx.get(&format!("pixels.{i}"));
        let x = be.upload(pixels, shape).unwrap();
        let t = det.forward(be, &x).unwrap();
        let what = |stage: &str| format!("{v} image {i} ({}) {stage}", fx.images[i]);
        let want = |name: &str| &fx.get(&format!("{v}.{i}.{name}")).0;
        assert_max_abs(&what("global"), &read(be, &t.global), want("global"), TOL_EMBEDDING);
        for (l, stages) in layers.iter().zip(&t.layers) {
            let a = &stages.assignment;
            assert_max_abs(
                &what(&format!("patch.{l}")),
                &read(be, &stages.patches),
                want(&format!("patch.{l}")),
                TOL_EMBEDDING,
            );
            assert_max_abs(&what(&format!("cost.{l}")), &read(be, &a.cost), want(&format!("cost.{l}")), TOL_EMBEDDING);
            assert_max_abs(&what(&format!("plan.{l}")), &read(be, &a.plan), want(&format!("plan.{l}")), TOL_PLAN);
            assert_max_abs(
                &what(&format!("weights.{l}")),
                &read(be, &a.weights),
                want(&format!("weights.{l}")),
                TOL_PROB,
            );
            let probs = read(be, &stages.probabilities);
            assert_max_abs(&what(&format!("probs.{l}")), &probs, want(&format!("probs.{l}")), TOL_PROB);
        }
        assert_max_abs(&what("map_raw"), &read(be, &t.raw_map), want("map_raw"), TOL_MAP);
        assert_eq!(t.map.shape(), &[1, fx.size, fx.size]);
        let map = read(be, &t.map);
        assert_max_abs(&what("map"), &map, want("map"), TOL_MAP);
        let d = pollster::block_on(det.detect(be, pixels)).unwrap();
        assert_eq!(d.map, map, "detect() and forward() disagree");
        assert_max_abs(&what("score"), &[d.score], want("score"), TOL_SCORE);
    }
}

macro_rules! variant_tests {
    ($($name:ident => $v:literal),+ $(,)?) => {
        $(mod $name {
            #[test]
            fn cpu() {
                super::variant_matches_reference(&super::common::cpu(), $v);
            }
            #[test]
            fn gpu() {
                if let Some(g) = super::common::gpu(concat!(module_path!(), "::gpu")) {
                    super::variant_matches_reference(g, $v);
                }
            }
        })+
    };
}

variant_tests! {
    m4_embeddings_global_matches_reference => "v1",
    m4_probabilities_fused_three_layers_matches_reference => "v2",
    m1_anomalyclip_prompts_matches_reference => "v3",
    ensemble_matches_reference => "v4",
}

/// Import encodes prompts as the reference does: the stored text embeddings equal its
/// `encode_text` with contexts and deep prompts (M = 4 from a prompts file, M = 1 from an
/// AnomalyCLIP checkpoint) and the ensemble's averaged embeddings.
#[test]
fn imported_text_embeddings_match_reference() {
    let fx = DetectFixture::load();
    let dir = scratch("text-embeddings");
    for (v, key) in [("v1", "m4"), ("v3", "m1"), ("v4", "ensemble.object")] {
        let file = ModelFile::open(&import_variant(&fx, v, &dir, false)).unwrap();
        for (name, suffix) in [(TEXT_NORMAL, "text_normal"), (TEXT_ABNORMAL, "text_abnormal")] {
            let (want, shape) = fx.get(&format!("{key}.{suffix}"));
            assert_eq!(file.config.text_embeddings.as_ref().unwrap().subspaces, shape[0]);
            assert_max_abs(&format!("{key} {suffix}"), &file.read_f32(name).unwrap(), want, 1e-5);
        }
    }
}

/// METHOD.md B9: with M = 1 the plan puts all of each token's mass on the one subspace, the
/// top-K weights are exactly 1, and the map and score are AnomalyCLIP's (the reference's plain
/// A4 scoring, without any transport).
fn single_subspace_equals_anomalyclip<B: Backend>(be: &B) {
    let fx = DetectFixture::load();
    let dir = scratch("m1-anomalyclip");
    let file = ModelFile::open(&import_variant(&fx, "v3", &dir, true)).unwrap();
    let det = Detector::load(&file, &file.config, be).unwrap();
    for i in 0..fx.images.len() {
        let (pixels, shape) = fx.get(&format!("pixels.{i}"));
        let t = det.forward(be, &be.upload(pixels, shape).unwrap()).unwrap();
        let a = &t.layers[0].assignment;
        let n = a.plan.shape()[0];
        assert_max_abs("M = 1 plan", &read(be, &a.plan), &vec![1.0 / n as f32; n], 1e-7);
        assert!(read(be, &a.weights).iter().all(|&w| w == 1.0), "M = 1 weights must be exactly 1");
        assert_max_abs(
            "M = 1 map vs AnomalyCLIP",
            &read(be, &t.map),
            &fx.get(&format!("v3.{i}.anomalyclip.map")).0,
            TOL_MAP,
        );
        let score = read(be, &t.global_score);
        assert_max_abs(
            "M = 1 score vs AnomalyCLIP",
            &score,
            &fx.get(&format!("v3.{i}.anomalyclip.score")).0,
            TOL_SCORE,
        );
    }
}
on_both_backends!(single_subspace_equals_anomalyclip, super::single_subspace_equals_anomalyclip);
