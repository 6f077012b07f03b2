//! The residual attention blocks both CLIP towers share (open_clip `ResidualAttentionBlock`,
//! `Transformer`, with QuickGELU as in OpenAI's CLIP or exact GELU as open_clip's own models;
//! METHOD.md A1).

use crate::backend::{AttentionKind, AttentionMask, BLayout, Backend, TensorInfo};
use crate::Error;

use super::config::{Activation, LAYER_NORM_EPS};
use super::weights::Weights;

/// `nn.LayerNorm` (open_clip `LayerNorm`, computed in f32).
pub struct LayerNorm<B: Backend> {
    weight: B::Tensor,
    bias: B::Tensor,
}

impl<B: Backend> LayerNorm<B> {
    /// Loads `weight` and `bias` under `w`'s prefix.
    pub fn load(w: &Weights<'_, B>) -> Result<Self, Error> {
        Ok(LayerNorm { weight: w.tensor("weight")?, bias: w.tensor("bias")? })
    }

    /// # Shapes
    /// `x`: `[T, W]` → `[T, W]`.
    pub fn forward(&self, be: &B, x: &B::Tensor) -> Result<B::Tensor, Error> {
        Ok(be.layer_norm(x, &self.weight, &self.bias, LAYER_NORM_EPS)?)
    }
}

/// `nn.Linear`: `x · weightᵀ + bias`, the weight held transposed (`[in, out]`) on the device.
pub struct Linear<B: Backend> {
    weight: B::Tensor,
    bias: B::Tensor,
}

impl<B: Backend> Linear<B> {
    /// Loads `{weight_name}` and `{bias_name}` under `w`'s prefix. The matmul reads bias and
    /// weight in one storage type, so an f16 weight gets its (f32-stored) bias rounded to f16.
    pub fn load(w: &Weights<'_, B>, weight_name: &str, bias_name: &str) -> Result<Self, Error> {
        let weight = w.tensor_transposed(weight_name)?;
        let bias = w.tensor_in(bias_name, weight.dtype())?;
        Ok(Linear { weight, bias })
    }

    /// # Shapes
    /// `x`: `[T, in]` → `[T, out]`.
    pub fn forward(&self, be: &B, x: &B::Tensor) -> Result<B::Tensor, Error> {
        Ok(be.matmul(x, &self.weight, Some(&self.bias), BLayout::RowMajor)?)
    }
}

/// `nn.MultiheadAttention` with packed `in_proj` (self-attention only).
pub struct Attention<B: Backend> {
    in_proj: Linear<B>,
    out_proj: Linear<B>,
    heads: usize,
}

impl<B: Backend> Attention<B> {
    /// Loads `in_proj_weight`, `in_proj_bias`, `out_proj.{weight,bias}` under `w`'s prefix.
    pub fn load(w: &Weights<'_, B>, heads: usize) -> Result<Self, Error> {
        let in_proj = Linear::load(w, "in_proj_weight", "in_proj_bias")?;
        let out_proj = Linear::load(&w.pp("out_proj"), "weight", "bias")?;
        Ok(Attention { in_proj, out_proj, heads })
    }

    /// The packed `[q | k | v]` projection of `x` (`[T, W]` → `[T, 3W]`), shared by DPAM's two paths.
    pub fn qkv(&self, be: &B, x: &B::Tensor) -> Result<B::Tensor, Error> {
        self.in_proj.forward(be, x)
    }

    /// Attention of kind `kind` over a packed `qkv`, then `out_proj` (`[T, 3W]` → `[T, W]`).
    pub fn attend(
        &self,
        be: &B,
        qkv: &B::Tensor,
        kind: AttentionKind,
        mask: AttentionMask,
    ) -> Result<B::Tensor, Error> {
        let a = be.attention(qkv, self.heads, kind, mask)?;
        self.out_proj.forward(be, &a)
    }

    /// Standard self-attention (`[T, W]` → `[T, W]`).
    pub fn forward(&self, be: &B, x: &B::Tensor, mask: AttentionMask) -> Result<B::Tensor, Error> {
        self.attend(be, &self.qkv(be, x)?, AttentionKind::QueryKey, mask)
    }
}

/// The MLP: `c_proj(act(c_fc(x)))`, `act` QuickGELU or exact GELU.
pub struct Mlp<B: Backend> {
    c_fc: Linear<B>,
    c_proj: Linear<B>,
    activation: Activation,
}

impl<B: Backend> Mlp<B> {
    /// Loads `c_fc` and `c_proj` under `w`'s prefix.
    pub fn load(w: &Weights<'_, B>, activation: Activation) -> Result<Self, Error> {
        Ok(Mlp {
            c_fc: Linear::load(&w.pp("c_fc"), "weight", "bias")?,
            c_proj: Linear::load(&w.pp("c_proj"), "weight", "bias")?,
            activation,
        })
    }

    /// # Shapes
    /// `x`: `[T, W]` → `[T, W]`.
    pub fn forward(&self, be: &B, x: &B::Tensor) -> Result<B::Tensor, Error> {
        let fc = self.c_fc.forward(be, x)?;
        let h = match self.activation {
            Activation::QuickGelu => be.quick_gelu(&fc)?,
            Activation::Gelu => be.gelu(&fc)?,
        };
        self.c_proj.forward(be, &h)
    }
}

/// One pre-norm residual block: `x += attn(ln_1(x)); x += mlp(ln_2(x))`.
pub struct ResidualBlock<B: Backend> {
    /// Pre-attention norm (DPAM's V-V path reads it too).
    pub ln_1: LayerNorm<B>,
    /// Self-attention.
    pub attn: Attention<B>,
    ln_2: LayerNorm<B>,
    mlp: Mlp<B>,
}

impl<B: Backend> ResidualBlock<B> {
    /// Loads `ln_1`, `attn`, `ln_2`, `mlp` under `w`'s prefix.
    pub fn load(w: &Weights<'_, B>, heads: usize, activation: Activation) -> Result<Self, Error> {
        Ok(ResidualBlock {
            ln_1: LayerNorm::load(&w.pp("ln_1"))?,
            attn: Attention::load(&w.pp("attn"), heads)?,
            ln_2: LayerNorm::load(&w.pp("ln_2"))?,
            mlp: Mlp::load(&w.pp("mlp"), activation)?,
        })
    }

    /// The MLP half: `x + mlp(ln_2(x))`.
    pub fn mlp_residual(&self, be: &B, x: &B::Tensor) -> Result<B::Tensor, Error> {
        let m = self.mlp.forward(be, &self.ln_2.forward(be, x)?)?;
        Ok(be.add(x, &m)?)
    }

    /// # Shapes
    /// `x`: `[T, W]` → `[T, W]`.
    pub fn forward(&self, be: &B, x: &B::Tensor, mask: AttentionMask) -> Result<B::Tensor, Error> {
        let a = self.attn.forward(be, &self.ln_1.forward(be, x)?, mask)?;
        self.mlp_residual(be, &be.add(x, &a)?)
    }
}

/// Loads `resblocks.0 ..` under `w`'s prefix.
pub fn load_blocks<B: Backend>(
    w: &Weights<'_, B>,
    layers: usize,
    heads: usize,
    activation: Activation,
) -> Result<Vec<ResidualBlock<B>>, Error> {
    (0..layers).map(|i| ResidualBlock::load(&w.pp(format_args!("resblocks.{i}")), heads, activation)).collect()
}
