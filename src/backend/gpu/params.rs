//! Rust twins of the WGSL params structs (group 1, binding 0 of every kernel), each padded to a
//! multiple of 16 bytes. `tests/shaders.rs` checks every size against naga's layout of its
//! WGSL namesake.

use bytemuck::{Pod, Zeroable};

/// `ElementwiseParams` in `elementwise.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct ElementwiseParams {
    /// Element count.
    pub n: u32,
    /// Factor of `scale` and `affine`.
    pub factor: f32,
    /// Shift of `affine`.
    pub shift: f32,
    /// Padding.
    pub _pad: u32,
}

/// `LayerNormParams` in `norm.wgsl` (also used by `l2_normalize`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct LayerNormParams {
    /// Rows.
    pub rows: u32,
    /// Columns.
    pub cols: u32,
    /// Variance epsilon.
    pub eps: f32,
    /// Padding.
    pub _pad: u32,
}

/// `SoftmaxParams` in `softmax.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct SoftmaxParams {
    /// Rows.
    pub rows: u32,
    /// Columns.
    pub cols: u32,
    /// Padding.
    pub _pad: [u32; 2],
}

/// `MatmulParams` in `matmul.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct MatmulParams {
    /// Rows of a and c.
    pub m: u32,
    /// Columns of c.
    pub n: u32,
    /// Shared dimension.
    pub k: u32,
    /// Elements between batch items of a.
    pub a_batch_stride: u32,
    /// Elements between batch items of b (0 when shared).
    pub b_batch_stride: u32,
    /// Padding.
    pub _pad: [u32; 3],
}

/// `AttentionParams` in `attention.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct AttentionParams {
    /// Tokens per batch item.
    pub tokens: u32,
    /// Head width.
    pub head_dim: u32,
    /// Elements per qkv row (3W).
    pub row_stride: u32,
    /// Elements per output row (W).
    pub out_stride: u32,
    /// Column of the query block.
    pub q_offset: u32,
    /// Column of the key block.
    pub k_offset: u32,
    /// Column of the value block.
    pub v_offset: u32,
    /// 1 for a causal mask.
    pub causal: u32,
    /// Score scale, 1/√d.
    pub scale: f32,
    /// Padding.
    pub _pad: [u32; 3],
}

/// `Im2colParams` in `patch_embed.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct Im2colParams {
    /// Image channels.
    pub channels: u32,
    /// Image height.
    pub height: u32,
    /// Image width.
    pub width: u32,
    /// Patch size.
    pub patch_size: u32,
    /// Patches per grid row.
    pub grid_w: u32,
    /// Output elements.
    pub total: u32,
    /// Padding.
    pub _pad: [u32; 2],
}

/// `ResizeParams` in `resize.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct ResizeParams {
    /// Planes.
    pub channels: u32,
    /// Input height.
    pub in_h: u32,
    /// Input width.
    pub in_w: u32,
    /// Output height.
    pub out_h: u32,
    /// Output width.
    pub out_w: u32,
    /// in_h / out_h.
    pub scale_h: f32,
    /// in_w / out_w.
    pub scale_w: f32,
    /// Padding.
    pub _pad: u32,
}

/// `BlurParams` in `blur.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct BlurParams {
    /// Planes.
    pub channels: u32,
    /// Plane height.
    pub height: u32,
    /// Plane width.
    pub width: u32,
    /// Kernel radius.
    pub radius: u32,
}

/// `SinkhornParams` in `transport.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct SinkhornParams {
    /// Rows N.
    pub tokens: u32,
    /// Columns M.
    pub subspaces: u32,
    /// Iteration cap.
    pub max_iters: u32,
    /// Padding.
    pub _pad0: u32,
    /// 1/ε.
    pub inv_eps: f32,
    /// Stopping tolerance.
    pub tol: f32,
    /// Padding.
    pub _pad1: [u32; 2],
}

/// `TopKParams` in `transport.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct TopKParams {
    /// Rows.
    pub rows: u32,
    /// Columns M.
    pub cols: u32,
    /// Entries kept.
    pub k: u32,
    /// Padding.
    pub _pad: u32,
}

/// `CopyParams` in `copy.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct CopyParams {
    /// Elements to copy.
    pub n: u32,
    /// First source element.
    pub src_offset: u32,
    /// First destination element.
    pub dst_offset: u32,
    /// Padding.
    pub _pad: u32,
}

/// `ScoreParams` in `score.wgsl`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct ScoreParams {
    /// Tokens N.
    pub tokens: u32,
    /// Embedding width D.
    pub dim: u32,
    /// Subspaces M.
    pub subspaces: u32,
    /// 0: mix embeddings, 1: mix probabilities.
    pub mix: u32,
    /// Softmax temperature τ.
    pub temperature: f32,
    /// Padding.
    pub _pad: [u32; 3],
}
