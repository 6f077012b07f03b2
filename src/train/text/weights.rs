//! The frozen text tower on the host, in `T` (open_clip `TextTransformer`, OpenAI layout; METHOD.md
//! A3): positional embedding, residual blocks, `ln_final`, `text_projection`. f16-stored matrices
//! are widened; as at inference (`clip::transformer::Linear::load`), a bias beside an f16 weight is
//! rounded to f16. The 49408-row token table is not kept: only the prompts' rows are read.

use crate::clip::config::TextConfig;
use crate::clip::safetensors::{to_f32, StDType};
use crate::clip::weights::{RawTensor, TensorSource};
use crate::clip::ModelError;
use crate::train::real::Real;

/// `nn.Linear`: weight `[out, in]` as PyTorch stores it, bias `[out]`.
#[derive(Debug, Clone)]
pub(super) struct Linear<T> {
    pub weight: Vec<T>,
    pub bias: Vec<T>,
}

/// `nn.LayerNorm`'s affine parameters, `[W]` each.
#[derive(Debug, Clone)]
pub(super) struct Norm<T> {
    pub weight: Vec<T>,
    pub bias: Vec<T>,
}

/// One `ResidualAttentionBlock`: `x += out_proj(attn(ln_1 x)); x += c_proj(QuickGELU(c_fc(ln_2 x)))`.
#[derive(Debug, Clone)]
pub(super) struct Block<T> {
    pub ln_1: Norm<T>,
    pub in_proj: Linear<T>,
    pub out_proj: Linear<T>,
    pub ln_2: Norm<T>,
    pub c_fc: Linear<T>,
    pub c_proj: Linear<T>,
}

/// The text tower's frozen weights on the host (everything but the token table).
#[derive(Debug, Clone)]
pub struct TextWeights<T> {
    pub(super) config: TextConfig,
    pub(super) embed_dim: usize,
    /// `[context_length, W]`.
    pub(super) positional: Vec<T>,
    pub(super) blocks: Vec<Block<T>>,
    pub(super) ln_final: Norm<T>,
    /// `[W, D]`.
    pub(super) projection: Vec<T>,
}

/// Tensor `name` as `T`, checked to have `shape`; also its stored type.
fn read<T: Real>(src: &dyn TensorSource, name: &str, shape: &[usize]) -> Result<(Vec<T>, StDType), ModelError> {
    let raw = src.read_raw(name)?;
    if raw.shape != shape {
        return Err(ModelError::ShapeMismatch {
            path: src.source_name().to_string(),
            name: name.to_string(),
            expected: shape.to_vec(),
            got: raw.shape,
        });
    }
    Ok((values(src, name, &raw)?, raw.dtype))
}

/// `raw`'s elements as `T`, checked to fill its shape.
fn values<T: Real>(src: &dyn TensorSource, name: &str, raw: &RawTensor) -> Result<Vec<T>, ModelError> {
    let v = raw.to_f32()?;
    if v.len() != raw.shape.iter().product::<usize>() {
        return Err(ModelError::corrupt(
            src.source_name(),
            format!("tensor `{name}` holds too few bytes for its shape"),
        ));
    }
    Ok(v.into_iter().map(T::from_f32).collect())
}

impl<T: Real> Norm<T> {
    fn load(src: &dyn TensorSource, prefix: &str, width: usize) -> Result<Self, ModelError> {
        let weight = read(src, &format!("{prefix}.weight"), &[width])?.0;
        Ok(Norm { weight, bias: read(src, &format!("{prefix}.bias"), &[width])?.0 })
    }
}

impl<T: Real> Linear<T> {
    fn load(src: &dyn TensorSource, weight: &str, bias: &str, out: usize, inp: usize) -> Result<Self, ModelError> {
        let (weight, dtype) = read(src, weight, &[out, inp])?;
        let (mut bias, _) = read::<T>(src, bias, &[out])?;
        if dtype == StDType::F16 {
            bias.iter_mut().for_each(|b| *b = T::from_f32(half::f16::from_f32(b.to_f32()).to_f32()));
        }
        Ok(Linear { weight, bias })
    }
}

impl<T: Real> Block<T> {
    fn load(src: &dyn TensorSource, i: usize, c: &TextConfig) -> Result<Self, ModelError> {
        let (w, f) = (c.width, c.mlp_width);
        let p = format!("transformer.resblocks.{i}");
        Ok(Block {
            ln_1: Norm::load(src, &format!("{p}.ln_1"), w)?,
            in_proj: Linear::load(
                src,
                &format!("{p}.attn.in_proj_weight"),
                &format!("{p}.attn.in_proj_bias"),
                3 * w,
                w,
            )?,
            out_proj: Linear::load(
                src,
                &format!("{p}.attn.out_proj.weight"),
                &format!("{p}.attn.out_proj.bias"),
                w,
                w,
            )?,
            ln_2: Norm::load(src, &format!("{p}.ln_2"), w)?,
            c_fc: Linear::load(src, &format!("{p}.mlp.c_fc.weight"), &format!("{p}.mlp.c_fc.bias"), f, w)?,
            c_proj: Linear::load(src, &format!("{p}.mlp.c_proj.weight"), &format!("{p}.mlp.c_proj.bias"), w, f)?,
        })
    }
}

/// Checks that `c` describes a text tower this code can run.
fn validate(c: &TextConfig) -> Result<(), ModelError> {
    let ok = c.width > 0 && c.layers > 0 && c.heads > 0 && c.width.is_multiple_of(c.heads) && c.mlp_width > 0;
    if ok && c.context_length > 0 && c.vocab_size > 0 {
        Ok(())
    } else {
        Err(ModelError::Config(format!(
            "text tower needs width, layers, heads, MLP width, context and vocabulary > 0 and heads dividing the width: {c:?}"
        )))
    }
}

impl<T: Real> TextWeights<T> {
    /// Reads the text tower's tensors from `src` (OpenAI names, no prefix), checking every shape
    /// against `config`; the embedding width D is `text_projection`'s second dimension.
    ///
    /// # Errors
    /// [`ModelError`] when a tensor is missing, has another shape, is not a float tensor, or the
    /// configuration is inconsistent.
    pub fn load(src: &dyn TensorSource, config: &TextConfig) -> Result<Self, ModelError> {
        validate(config)?;
        let w = config.width;
        let proj = src.read_raw("text_projection")?;
        let embed_dim = match proj.shape[..] {
            [rows, d] if rows == w && d > 0 => d,
            _ => {
                return Err(ModelError::ShapeMismatch {
                    path: src.source_name().to_string(),
                    name: "text_projection".into(),
                    expected: vec![w, 0],
                    got: proj.shape,
                })
            }
        };
        Ok(TextWeights {
            config: config.clone(),
            embed_dim,
            positional: read(src, "positional_embedding", &[config.context_length, w])?.0,
            blocks: (0..config.layers).map(|i| Block::load(src, i, config)).collect::<Result<_, _>>()?,
            ln_final: Norm::load(src, "ln_final", w)?,
            projection: values(src, "text_projection", &proj)?,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &TextConfig {
        &self.config
    }

    /// The joint embedding width D.
    pub fn embed_dim(&self) -> usize {
        self.embed_dim
    }
}

/// Rows `ids` of `token_embedding.weight` (`[vocab, W]`) as `T`, `[ids.len(), W]`.
///
/// # Errors
/// [`ModelError`] when the table is missing or misshapen or an id is outside the vocabulary.
pub(super) fn token_rows<T: Real>(src: &dyn TensorSource, c: &TextConfig, ids: &[u32]) -> Result<Vec<T>, ModelError> {
    let name = "token_embedding.weight";
    let raw = src.read_raw(name)?;
    if raw.shape != [c.vocab_size, c.width] {
        return Err(ModelError::ShapeMismatch {
            path: src.source_name().to_string(),
            name: name.into(),
            expected: vec![c.vocab_size, c.width],
            got: raw.shape,
        });
    }
    let row_bytes = c.width * raw.dtype.size() as usize;
    let mut out = Vec::with_capacity(ids.len() * c.width);
    for &id in ids {
        let bytes = raw.bytes.get(id as usize * row_bytes..(id as usize + 1) * row_bytes);
        let row = bytes.and_then(|b| to_f32(raw.dtype, b)).ok_or_else(|| {
            ModelError::Config(format!("token id {id} is outside the {}-row float token table", c.vocab_size))
        })?;
        out.extend(row.into_iter().map(T::from_f32));
    }
    Ok(out)
}
