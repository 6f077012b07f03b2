//! DPAM, the V-V attention second path of AnomalyCLIP (METHOD.md A2; AnomalyCLIP's
//! `AnomalyCLIP_lib/AnomalyCLIP.py`, `Attention` and `ResidualAttentionBlock`).
//!
//! From layer `dpam_start` a second residual stream `z` runs beside the normal one `h`. Both
//! paths read the same packed projection of `ln_1(h)`: `h` gets the usual q-k attention and its
//! MLP, `z` gets `softmax(v vᵀ/√d) v` through the same `out_proj` and no MLP.

use crate::backend::{AttentionKind, AttentionMask, Backend};
use crate::Error;

use super::transformer::ResidualBlock;

/// One DPAM layer: `(h, z)` → `(h + attn(ln_1 h) + mlp(…), z + vv_attn(ln_1 h))`. With
/// `class_only` (the last layer, where only the class token of `h` is used) the MLP runs on the
/// class token alone and `h` comes back as that one row.
///
/// # Shapes
/// `h`, `z`: `[T, W]` → `([T, W]` or `[1, W]`, `[T, W])`; batched, `[B, T, W]` →
/// `([B, T, W]` or `[B, 1, W]`, `[B, T, W])`.
pub fn dual_path<B: Backend>(
    be: &B,
    block: &ResidualBlock<B>,
    h: &B::Tensor,
    z: &B::Tensor,
    class_only: bool,
) -> Result<(B::Tensor, B::Tensor), Error> {
    let qkv = block.attn.qkv(be, &block.ln_1.forward(be, h)?)?;
    let normal = block.attn.attend(be, &qkv, AttentionKind::QueryKey, AttentionMask::None)?;
    let value_value = block.attn.attend(be, &qkv, AttentionKind::ValueValue, AttentionMask::None)?;
    let mut h = be.add(h, &normal)?;
    if class_only {
        h = super::batch::class_rows(be, &h)?;
    }
    let h = block.mlp_residual(be, &h)?;
    let z = be.add(z, &value_value)?;
    Ok((h, z))
}
