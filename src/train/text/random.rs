//! A text tower with random weights as a [`TensorSource`] (OpenAI names, f32), for gradient
//! checks and for timing the text step without a model file. Scales follow open_clip's
//! `TextTransformer.init_parameters`; norms and biases are perturbed so that every term of the
//! backward pass is exercised.

use std::collections::HashMap;

use crate::clip::config::TextConfig;
use crate::clip::safetensors::{f32_bytes, StDType};
use crate::clip::weights::{RawTensor, TensorSource};
use crate::clip::ModelError;
use crate::train::rng::Rng;

/// Random text-tower tensors held in memory.
#[derive(Debug, Clone)]
pub struct RandomTextSource {
    tensors: HashMap<String, RawTensor>,
}

impl RandomTextSource {
    /// A tower of `config`'s shapes with joint width `embed_dim`, deterministic in `seed`.
    pub fn new(config: &TextConfig, embed_dim: usize, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let mut tensors = HashMap::new();
        let (w, f, l) = (config.width, config.mlp_width, config.layers.max(1));
        let attn = (w as f64).powf(-0.5);
        let proj = attn * ((2 * l) as f64).powf(-0.5);
        let fc = ((2 * w) as f64).powf(-0.5);
        let mut put = |name: String, shape: Vec<usize>, mean: f64, std: f64| {
            let n = shape.iter().product::<usize>();
            let v: Vec<f32> = (0..n).map(|_| (mean + std * rng.normal()) as f32).collect();
            tensors.insert(name, RawTensor { dtype: StDType::F32, shape, bytes: f32_bytes(&v) });
        };
        put("token_embedding.weight".into(), vec![config.vocab_size, w], 0.0, 0.02);
        put("positional_embedding".into(), vec![config.context_length, w], 0.0, 0.01);
        for i in 0..config.layers {
            let p = format!("transformer.resblocks.{i}");
            for ln in ["ln_1", "ln_2"] {
                put(format!("{p}.{ln}.weight"), vec![w], 1.0, 0.1);
                put(format!("{p}.{ln}.bias"), vec![w], 0.0, 0.1);
            }
            put(format!("{p}.attn.in_proj_weight"), vec![3 * w, w], 0.0, attn);
            put(format!("{p}.attn.in_proj_bias"), vec![3 * w], 0.0, 0.02);
            put(format!("{p}.attn.out_proj.weight"), vec![w, w], 0.0, proj);
            put(format!("{p}.attn.out_proj.bias"), vec![w], 0.0, 0.02);
            put(format!("{p}.mlp.c_fc.weight"), vec![f, w], 0.0, fc);
            put(format!("{p}.mlp.c_fc.bias"), vec![f], 0.0, 0.02);
            put(format!("{p}.mlp.c_proj.weight"), vec![w, f], 0.0, proj);
            put(format!("{p}.mlp.c_proj.bias"), vec![w], 0.0, 0.02);
        }
        put("ln_final.weight".into(), vec![w], 1.0, 0.1);
        put("ln_final.bias".into(), vec![w], 0.0, 0.1);
        put("text_projection".into(), vec![w, embed_dim], 0.0, attn);
        RandomTextSource { tensors }
    }
}

impl TensorSource for RandomTextSource {
    fn source_name(&self) -> &str {
        "random text tower"
    }

    fn read_raw(&self, name: &str) -> Result<RawTensor, ModelError> {
        self.tensors
            .get(name)
            .cloned()
            .ok_or_else(|| ModelError::MissingTensor { path: self.source_name().into(), name: name.into() })
    }
}
