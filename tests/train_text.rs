//! The text encoder's forward with a tape and its exact backward into the prompts
//! (src/train/text, METHOD.md A3, B1): float64 finite differences on a random tower and on the
//! tiny fixture CLIP, forward parity with `Prompts::encode` on the CPU backend and with the
//! PyTorch reference, and gradients equal to PyTorch autograd's
//! (tools/make_train_text_fixtures.py).

mod common;

use std::collections::HashMap;

use common::clip::{fixture_path, import, scratch};
use common::detect::{max_abs, tiny_clip, DetectFixture};
use tokenclip::clip::config::{Activation, PromptConfig, TextConfig, WeightDType};
use tokenclip::clip::model::ClipModel;
use tokenclip::clip::model_file::ModelFile;
use tokenclip::tokenclip::prompt_files::read_prompts;
use tokenclip::tokenclip::prompts::Prompts;
use tokenclip::train::rng::Rng;
use tokenclip::train::text::{PromptGrads, PromptTensors, RandomTextSource, TextModel};

/// Central-difference step in f64.
const H: f64 = 1e-6;

fn randn(rng: &mut Rng, n: usize, scale: f64) -> Vec<f64> {
    (0..n).map(|_| rng.normal() * scale).collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `Σ c_n · t_n + Σ c_a · t_a` for prompts `p`.
fn loss(model: &TextModel<f64>, p: &PromptTensors<f64>, c: &(Vec<f64>, Vec<f64>)) -> f64 {
    let (out, _) = model.forward_tensors(p).unwrap();
    dot(&c.0, &out.normal) + dot(&c.1, &out.abnormal)
}

/// Checks the analytic gradient against central differences at `entries` random elements of each
/// prompt tensor (|fd − g| ≤ 1e-6 · max(|g|, 1e-2 · max|g|)) and along two random directions
/// (relative error ≤ 1e-6). Returns (worst element error relative to max |g|, worst directional).
fn check_prompt_gradients(model: &TextModel<f64>, p: &PromptTensors<f64>, entries: usize, seed: u64) -> (f64, f64) {
    let mut rng = Rng::new(seed);
    let d = model.embed_dim() * model.prompt_config().subspaces;
    let c = (randn(&mut rng, d, 1.0), randn(&mut rng, d, 1.0));
    let (_, tape) = model.forward_tensors(p).unwrap();
    let g = model.backward(&tape, &c.0, &c.1).unwrap();
    let scale =
        [&g.ctx_normal, &g.ctx_abnormal, &g.deep].iter().flat_map(|v| v.iter()).fold(0.0f64, |m, x| m.max(x.abs()));
    let mut worst_element: f64 = 0.0;
    type Field = fn(&mut PromptTensors<f64>) -> &mut Vec<f64>;
    let fields: [(&str, Field); 3] =
        [("ctx_normal", |p| &mut p.ctx_normal), ("ctx_abnormal", |p| &mut p.ctx_abnormal), ("deep", |p| &mut p.deep)];
    for (name, field) in fields {
        let n = field(&mut p.clone()).len();
        let grad = field(&mut g.clone()).clone();
        for _ in 0..entries.min(n) {
            let i = rng.below(n);
            let at = |h: f64| {
                let mut q = p.clone();
                field(&mut q)[i] += h;
                loss(model, &q, &c)
            };
            let fd = (at(H) - at(-H)) / (2.0 * H);
            let err = (fd - grad[i]).abs();
            worst_element = worst_element.max(err / scale);
            assert!(err <= 1e-6 * grad[i].abs().max(1e-2 * scale), "{name}[{i}]: fd {fd:e} vs analytic {:e}", grad[i]);
        }
    }
    let mut worst_dir: f64 = 0.0;
    for _ in 0..2 {
        let dir = PromptGrads {
            ctx_normal: randn(&mut rng, p.ctx_normal.len(), 1.0),
            ctx_abnormal: randn(&mut rng, p.ctx_abnormal.len(), 1.0),
            deep: randn(&mut rng, p.deep.len(), 1.0),
        };
        let step = |h: f64| {
            let add = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x + h * y).collect();
            let q = PromptTensors {
                ctx_normal: add(&p.ctx_normal, &dir.ctx_normal),
                ctx_abnormal: add(&p.ctx_abnormal, &dir.ctx_abnormal),
                deep: add(&p.deep, &dir.deep),
            };
            loss(model, &q, &c)
        };
        let fd = (step(H) - step(-H)) / (2.0 * H);
        let an =
            dot(&g.ctx_normal, &dir.ctx_normal) + dot(&g.ctx_abnormal, &dir.ctx_abnormal) + dot(&g.deep, &dir.deep);
        let rel = (fd - an).abs() / fd.abs().max(an.abs());
        worst_dir = worst_dir.max(rel);
        assert!(rel <= 1e-6, "directional derivative: fd {fd:e} vs analytic {an:e} (rel {rel:e})");
    }
    (worst_element, worst_dir)
}

/// A random tower (W 64, 4 layers, 2 heads, D 32) with M = 2 and 3 deep-prompt layers, with
/// QuickGELU and with exact GELU.
#[test]
fn random_tower_prompt_gradients_match_finite_differences_f64() {
    for activation in [Activation::QuickGelu, Activation::Gelu] {
        random_tower_gradients(activation);
    }
}

fn random_tower_gradients(activation: Activation) {
    let text = TextConfig {
        width: 64,
        layers: 4,
        heads: 2,
        mlp_width: 256,
        context_length: 77,
        vocab_size: 49408,
        activation,
    };
    let src = RandomTextSource::new(&text, 32, 21);
    let mut cfg = PromptConfig::anomalyclip(2, 64);
    cfg.deep_layers = 3;
    let model = TextModel::<f64>::load(&src, &text, &cfg).unwrap();
    let mut rng = Rng::new(22);
    let z = PromptTensors::<f64>::zeros(&cfg);
    let p = PromptTensors {
        ctx_normal: randn(&mut rng, z.ctx_normal.len(), 0.1),
        ctx_abnormal: randn(&mut rng, z.ctx_abnormal.len(), 0.1),
        deep: randn(&mut rng, z.deep.len(), 0.1),
    };
    let (element, directional) = check_prompt_gradients(&model, &p, 24, 23);
    eprintln!(
        "random tower, {}: worst element error / max|g| {element:e}, worst directional rel error {directional:e}",
        activation.name()
    );
}

/// The tiny fixture model (W 64, 4 layers, 1 head, D 64) imported to a model file, and the
/// fixture's M = 4 prompts with 3 deep-prompt layers.
fn fixture_model<T: tokenclip::train::real::Real>(
    dir: &std::path::Path,
    dtype: WeightDType,
) -> (TextModel<T>, ModelFile, Prompts) {
    let file = ModelFile::open(&import(&tiny_clip(dir), dir, dtype, false)).unwrap();
    let prompts = read_prompts(&fixture_path("detect_tiny/prompts_m4.safetensors")).unwrap();
    let text = file.config.clip.text.clone().unwrap();
    (TextModel::load(&file, &text, &prompts.config).unwrap(), file, prompts)
}

#[test]
fn fixture_clip_prompt_gradients_match_finite_differences_f64() {
    let dir = scratch("train-text-fd");
    let (model, _, prompts) = fixture_model::<f64>(&dir, WeightDType::F32);
    let (element, directional) = check_prompt_gradients(&model, &PromptTensors::from_prompts(&prompts), 16, 31);
    eprintln!("fixture CLIP: worst element error / max|g| {element:e}, worst directional rel error {directional:e}");
}

/// In f32, the taped forward equals inference's `Prompts::encode` on the CPU backend (f32 and f16
/// model files) and the PyTorch reference's `m4` embeddings.
#[test]
fn forward_matches_prompts_encode_and_pytorch() {
    let dir = scratch("train-text-parity");
    let fx = DetectFixture::load();
    let be = common::cpu();
    for dtype in [WeightDType::F32, WeightDType::F16] {
        let (model, file, prompts) = fixture_model::<f32>(&dir, dtype);
        let (out, _) = model.forward(&prompts).unwrap();
        let clip = ClipModel::load(&file, &file.config, &be).unwrap();
        let want = pollster::block_on(prompts.encode(&be, clip.text.as_ref().unwrap())).unwrap();
        let e = max_abs(&out.normal, &want.normal).max(max_abs(&out.abnormal, &want.abnormal));
        eprintln!("{dtype:?}: max |taped forward − Prompts::encode (cpu)| = {e:e}");
        assert!(e <= 1e-5, "{dtype:?}: {e:e}");
        if dtype == WeightDType::F32 {
            let e = max_abs(&out.normal, &fx.get("m4.text_normal").0)
                .max(max_abs(&out.abnormal, &fx.get("m4.text_abnormal").0));
            eprintln!("max |taped forward − PyTorch m4 embeddings| = {e:e}");
            assert!(e <= 1e-5, "{e:e}");
        }
    }
}

/// An exact-GELU CLIP (tools/make_checkpoint_fixtures.py, open_clip with `quick_gelu = False`):
/// the taped forward equals inference's `Prompts::encode`, and its gradients equal finite
/// differences (f64).
#[test]
fn exact_gelu_clip_forward_and_gradients() {
    let dir = scratch("train-text-gelu");
    let src = common::clip::gunzip("checkpoints/openclip_gelu/open_clip_model.safetensors.gz", &dir);
    let file = ModelFile::open(&import(&src, &dir, WeightDType::F32, false)).unwrap();
    let text = file.config.clip.text.clone().unwrap();
    assert_eq!(text.activation, Activation::Gelu);
    // One text layer: no deep prompts (they start before layer 2); the random tower test has them.
    let mut cfg = PromptConfig::anomalyclip(2, text.width);
    cfg.deep_layers = 0;
    let mut rng = Rng::new(41);
    let z = PromptTensors::<f64>::zeros(&cfg);
    let to32 = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect::<Vec<f32>>();
    let prompts = Prompts {
        config: cfg.clone(),
        ctx_normal: to32(randn(&mut rng, z.ctx_normal.len(), 0.1)),
        ctx_abnormal: to32(randn(&mut rng, z.ctx_abnormal.len(), 0.1)),
        deep: to32(randn(&mut rng, z.deep.len(), 0.1)),
    };
    let be = common::cpu();
    let clip = ClipModel::load(&file, &file.config, &be).unwrap();
    let want = pollster::block_on(prompts.encode(&be, clip.text.as_ref().unwrap())).unwrap();
    let (out, _) = TextModel::<f32>::load(&file, &text, &cfg).unwrap().forward(&prompts).unwrap();
    let e = max_abs(&out.normal, &want.normal).max(max_abs(&out.abnormal, &want.abnormal));
    eprintln!("exact GELU: max |taped forward − Prompts::encode (cpu)| = {e:e}");
    assert!(e <= 1e-5, "{e:e}");
    let model = TextModel::<f64>::load(&file, &text, &cfg).unwrap();
    let (element, directional) = check_prompt_gradients(&model, &PromptTensors::from_prompts(&prompts), 16, 43);
    eprintln!("exact GELU CLIP: worst element error / max|g| {element:e}, worst directional rel error {directional:e}");
}

/// `tests/fixtures/train_text_grads.safetensors`, all f64.
fn autograd_fixture() -> HashMap<String, Vec<f64>> {
    let bytes = std::fs::read(fixture_path("train_text_grads.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, v)| {
            assert_eq!(v.dtype(), safetensors::Dtype::F64, "{name}");
            (name, v.data().chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect())
        })
        .collect()
}

/// Largest |got − want| over the three gradients, relative to the largest |want|.
fn grad_error(got: &PromptGrads<f64>, fx: &HashMap<String, Vec<f64>>) -> f64 {
    let pairs =
        [(&got.ctx_normal, "grad.ctx_normal"), (&got.ctx_abnormal, "grad.ctx_abnormal"), (&got.deep, "grad.deep")];
    let scale = pairs.iter().flat_map(|(_, n)| fx[*n].iter()).fold(0.0f64, |m, x| m.max(x.abs()));
    let mut worst: f64 = 0.0;
    for (g, name) in pairs {
        assert_eq!(g.len(), fx[name].len(), "{name}");
        worst = g.iter().zip(&fx[name]).fold(worst, |w, (a, b)| w.max((a - b).abs() / scale));
    }
    worst
}

/// Our gradients equal PyTorch autograd's through the reference encoder: in f64 to 1e-12,
/// in f32 to 1e-4 of the largest gradient.
#[test]
fn gradients_match_pytorch_autograd() {
    let fx = autograd_fixture();
    let dir = scratch("train-text-autograd");
    let (m64, _, prompts) = fixture_model::<f64>(&dir, WeightDType::F32);
    let (out, tape) = m64.forward(&prompts).unwrap();
    let e_out = max_abs_f64(&out.normal, &fx["text_normal"]).max(max_abs_f64(&out.abnormal, &fx["text_abnormal"]));
    let g64 = m64.backward(&tape, &fx["cot_normal"], &fx["cot_abnormal"]).unwrap();
    let e64 = grad_error(&g64, &fx);
    let (m32, _, _) = fixture_model::<f32>(&dir, WeightDType::F32);
    let (_, tape) = m32.forward(&prompts).unwrap();
    let f32s = |v: &[f64]| v.iter().map(|&x| x as f32).collect::<Vec<_>>();
    let g32 = m32.backward(&tape, &f32s(&fx["cot_normal"]), &f32s(&fx["cot_abnormal"])).unwrap();
    let widen = |v: &[f32]| v.iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
    let g32 = PromptGrads {
        ctx_normal: widen(&g32.ctx_normal),
        ctx_abnormal: widen(&g32.ctx_abnormal),
        deep: widen(&g32.deep),
    };
    let e32 = grad_error(&g32, &fx);
    eprintln!("vs autograd (f64 reference): f64 embeddings {e_out:e}, f64 grads {e64:e}, f32 grads {e32:e} (relative to max|g|)");
    assert!(e_out <= 1e-13 && e64 <= 1e-12, "f64: embeddings {e_out:e}, gradients {e64:e}");
    assert!(e32 <= 1e-4, "f32 gradients {e32:e}");
}

fn max_abs_f64(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}

#[test]
fn load_and_forward_reject_mismatched_prompts() {
    let text = TextConfig {
        width: 32,
        layers: 2,
        heads: 1,
        mlp_width: 64,
        context_length: 77,
        vocab_size: 49408,
        activation: Default::default(),
    };
    let src = RandomTextSource::new(&text, 16, 41);
    let mut cfg = PromptConfig::anomalyclip(1, 32);
    cfg.deep_layers = 1;
    let wide = PromptConfig { width: 48, ..cfg.clone() };
    assert!(TextModel::<f32>::load(&src, &text, &wide).unwrap_err().to_string().contains("wide"));
    let deep = PromptConfig { deep_layers: 2, ..cfg.clone() };
    assert!(TextModel::<f32>::load(&src, &text, &deep).unwrap_err().to_string().contains("deep-prompt layers"));
    let long = PromptConfig { context_tokens: 80, ..cfg.clone() };
    assert!(TextModel::<f32>::load(&src, &text, &long).is_err());
    let bad_heads = TextConfig { heads: 3, ..text.clone() };
    assert!(TextModel::<f32>::load(&src, &bad_heads, &cfg).is_err());
    let model = TextModel::<f32>::load(&src, &text, &cfg).unwrap();
    let z = PromptTensors::<f32>::zeros(&cfg);
    let prompts = Prompts { config: cfg.clone(), ctx_normal: z.ctx_normal, ctx_abnormal: z.ctx_abnormal, deep: z.deep };
    assert!(model.forward(&prompts).is_ok());
    let other = Prompts { config: PromptConfig { normal_suffix: "thing.".into(), ..cfg }, ..prompts.clone() };
    assert!(model.forward(&other).is_err());
    let mut nan = prompts;
    nan.deep[0] = f32::NAN;
    assert!(model.forward(&nan).is_err());
}
