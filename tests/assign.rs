//! The assignment variants (`--assign`, METHOD.md B′): greedy puts each token wholly on its most
//! similar subspace (the paper's TokenCLIP-Van), uniform on every subspace equally. Checked on
//! both backends against host arithmetic on the read-back patch embeddings and the model's text
//! embeddings (the M = 4 reference variant), through to the token probabilities. One encoder
//! pass scored under several settings (`detect_settings`, what a sweep runs) equals a detector
//! loaded with each setting, bit for bit.

mod common;

use common::clip::scratch;
use common::detect::{import_variant, DetectFixture};
use common::read;
use tokenclip::backend::Backend;
use tokenclip::clip::config::{Assign, DetectionConfig, Mix, ScoreMode};
use tokenclip::clip::model_file::{ModelFile, TEXT_ABNORMAL, TEXT_NORMAL};
use tokenclip::Detector;

fn dot(a: &[f64], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * f64::from(*y)).sum()
}

fn normalized(v: Vec<f64>) -> Vec<f64> {
    let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

fn variants_assign_as_described<B: Backend>(be: &B) {
    let fx = DetectFixture::load();
    let dir = scratch("assign-variants");
    let file = ModelFile::open(&import_variant(&fx, "v1", &dir, true)).unwrap();
    let (t_n, t_a) = (file.read_f32(TEXT_NORMAL).unwrap(), file.read_f32(TEXT_ABNORMAL).unwrap());
    let d = file.config.clip.embed_dim;
    let m = t_n.len() / d;
    assert_eq!(m, 4);
    let axes: Vec<Vec<f64>> = t_n
        .chunks_exact(d)
        .zip(t_a.chunks_exact(d))
        .map(|(n, a)| normalized(n.iter().zip(a).map(|(x, y)| f64::from(x + y)).collect()))
        .collect();
    let (pixels, shape) = fx.get("pixels.0");
    for assign in [Assign::Greedy, Assign::Uniform] {
        let mut config = file.config.clone();
        config.detection.assign = assign;
        config.detection.mix = Mix::Embeddings;
        let det = Detector::load(&file, &config, be).unwrap();
        let t = det.forward(be, &be.upload(pixels, shape).unwrap()).unwrap();
        let layer = &t.layers[0];
        let patches = read(be, &layer.patches);
        let weights = read(be, &layer.assignment.weights);
        let probs = read(be, &layer.probabilities);
        let mut chosen = vec![0usize; m];
        for (i, (p, w)) in patches.chunks_exact(d).zip(weights.chunks_exact(m)).enumerate() {
            let sims: Vec<f64> = axes.iter().map(|s| dot(s, p)).collect();
            let want: Vec<f32> = match assign {
                Assign::Greedy => {
                    let best = (0..m).fold(0, |b, j| if sims[j] > sims[b] { j } else { b });
                    chosen[best] += 1;
                    (0..m).map(|j| if j == best { 1.0 } else { 0.0 }).collect()
                }
                _ => vec![0.25; m],
            };
            assert_eq!(w, want.as_slice(), "{assign:?}: token {i}'s weights (similarities {sims:?})");
            // Embedding mix: the token's own weighted normal/abnormal text embeddings, normalised.
            let mixed = |t: &[f32]| {
                normalized((0..d).map(|c| (0..m).map(|j| f64::from(w[j]) * f64::from(t[j * d + c])).sum()).collect())
            };
            let (n_hat, a_hat) = (mixed(&t_n), mixed(&t_a));
            let tau = f64::from(config.detection.temperature);
            let want_p = 1.0 / (1.0 + ((dot(&n_hat, p) - dot(&a_hat, p)) / tau).exp());
            assert!((f64::from(probs[i]) - want_p).abs() < 1e-4, "{assign:?}: token {i} p {} vs {want_p}", probs[i]);
        }
        if assign == Assign::Greedy {
            assert!(chosen.iter().filter(|&&c| c > 0).count() >= 2, "every token chose one subspace: {chosen:?}");
        }
        let d_ot = Detector::load(&file, &file.config, be).unwrap();
        let ot = read(be, &d_ot.forward(be, &be.upload(pixels, shape).unwrap()).unwrap().layers[0].assignment.weights);
        assert_ne!(ot, weights, "{assign:?} assigned exactly as OT");
    }
}
on_both_backends!(greedy_and_uniform_assign_as_described, super::variants_assign_as_described);

fn settings_equal_separate_detectors<B: Backend>(be: &B) {
    let fx = DetectFixture::load();
    let dir = scratch("assign-settings");
    let file = ModelFile::open(&import_variant(&fx, "v2", &dir, true)).unwrap();
    let base = file.config.detection.clone();
    let mut settings = Vec::new();
    for (top_k, epsilon, assign) in [(1, 0.1, Assign::Ot), (2, 0.05, Assign::Ot), (4, 0.1, Assign::Greedy)] {
        settings.push(DetectionConfig { top_k, epsilon, assign, ..base.clone() });
    }
    settings.push(DetectionConfig {
        assign: Assign::Uniform,
        mix: Mix::Probabilities,
        score: ScoreMode::Fused,
        sigma: 0.0,
        ..base.clone()
    });
    let det = Detector::load(&file, &file.config, be).unwrap();
    for i in 0..fx.images.len() {
        let pixels = &fx.get(&format!("pixels.{i}")).0;
        let swept = pollster::block_on(det.detect_settings(be, pixels, &settings)).unwrap();
        for (s, got) in settings.iter().zip(&swept) {
            let mut config = file.config.clone();
            config.detection = s.clone();
            let alone = Detector::load(&file, &config, be).unwrap();
            assert_eq!(got, &pollster::block_on(alone.detect(be, pixels)).unwrap(), "image {i} under {s:?}");
        }
        assert_ne!(swept[0].map, swept[1].map, "the settings made no difference");
    }
}
on_both_backends!(one_encoder_pass_under_several_settings, super::settings_equal_separate_detectors);
