//! The tensor-op interface model code is written against, and its two implementations.
//!
//! `clip/`, `tokenclip/` and `train/` are generic over [`Backend`]; only [`gpu`] touches wgpu and
//! only [`cpu`] touches threads and the GEMM. Every op validates its operands through
//! [`check`], shared by both implementations, so both refuse the same inputs with the same error.
//!
//! Conventions for every op:
//! - tensors are row-major and dense; "rows" means the product of all but the last dimension;
//! - activations are f32; an operand documented as a *weight* may also be f16 (see [`DType`]),
//!   read as f32 and accumulated in f32;
//! - ops return new tensors and never modify their inputs.

pub mod check;
pub mod cpu;
mod error;
pub mod gpu;
pub mod profile;

pub use error::BackendError;

/// Storage type of a tensor's elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float: every activation, and weights stored in full precision.
    F32,
    /// IEEE half, allowed only for weight operands (halves model downloads; the GPU reads it with
    /// `unpack2x16float`, so no `shader-f16` support is needed).
    F16,
}

impl DType {
    /// Lower-case name, as used in error messages and model metadata.
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "f32",
            DType::F16 => "f16",
        }
    }
}

/// What every tensor handle can tell about itself without touching the device.
pub trait TensorInfo {
    /// Dimensions, outermost first.
    fn shape(&self) -> &[usize];
    /// Element storage type.
    fn dtype(&self) -> DType;
    /// Number of elements.
    fn len(&self) -> usize {
        self.shape().iter().product()
    }
    /// True when the tensor has no elements.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How the right-hand operand of [`Backend::matmul`] is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum BLayout {
    /// `b` is `[K, N]`: `c = a · b`.
    #[default]
    RowMajor,
    /// `b` is `[N, K]` (a PyTorch `Linear` weight): `c = a · bᵀ`.
    Transposed,
}

/// Which product the attention scores come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AttentionKind {
    /// `softmax(q kᵀ / √d) v`, the transformer's own attention.
    #[default]
    QueryKey,
    /// `softmax(v vᵀ / √d) v`, the V-V attention of AnomalyCLIP's DPAM path (METHOD.md A2).
    ValueValue,
}

/// Which keys a query may attend to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AttentionMask {
    /// Every key.
    #[default]
    None,
    /// Keys at positions ≤ the query's (CLIP's text transformer).
    Causal,
}

/// How [`Backend::token_probabilities`] combines a token's subspaces (METHOD.md B6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreMix {
    /// Mix the text embeddings with the token's weights, normalise, then score.
    Embeddings,
    /// Score against each subspace, then mix the probabilities.
    Probabilities,
}

/// Parameters of entropic optimal transport (METHOD.md B4).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SinkhornParams {
    /// Entropic regularisation ε (> 0).
    pub eps: f32,
    /// Iteration cap (≥ 1).
    pub max_iters: u32,
    /// Stop once the mean absolute change of the row scaling falls below this.
    pub tol: f32,
}

impl Default for SinkhornParams {
    fn default() -> Self {
        SinkhornParams { eps: 0.1, max_iters: 100, tol: 1e-2 }
    }
}

/// The op set of METHOD.md's inference path, implemented once per device.
///
/// Shapes are given per method; every method returns
/// [`BackendError::ShapeMismatch`]/[`BackendError::EmptyTensor`]/[`BackendError::DTypeMismatch`]
/// for bad operands before any work is queued, and [`BackendError::LimitExceeded`] when the
/// device cannot hold or run the request.
#[allow(async_fn_in_trait)] // futures are !Send on wasm; callers never need Send.
pub trait Backend {
    /// A handle to a tensor on this device; cloning it shares the storage.
    type Tensor: TensorInfo + Clone + std::fmt::Debug;

    /// A short human-readable description ("cpu (2 threads)", "gpu: llvmpipe (Vulkan)").
    fn describe(&self) -> String;

    /// Copies f32 data to the device.
    ///
    /// # Shapes
    /// `data.len()` must equal the product of `shape`.
    fn upload(&self, data: &[f32], shape: &[usize]) -> Result<Self::Tensor, BackendError>;

    /// Copies f16 weight data to the device (kept as f16 there).
    fn upload_f16(&self, data: &[half::f16], shape: &[usize]) -> Result<Self::Tensor, BackendError>;

    /// Reads a tensor back as f32, finishing all queued work first.
    async fn read(&self, t: &Self::Tensor) -> Result<Vec<f32>, BackendError>;

    /// Submits queued work without waiting for it (a no-op on the CPU).
    fn flush(&self) -> Result<(), BackendError>;

    /// Submits queued work and waits until it has run (the per-op profile's fence; a no-op on
    /// the CPU, whose ops run as they are called; in the browser, where nothing may block, the
    /// same as [`Backend::flush`]).
    fn finish(&self) -> Result<(), BackendError> {
        self.flush()
    }

    /// Names the part of the model the next ops belong to ("vision layer 3"), for the per-op
    /// profile ([`profile::Profiled`]); backends themselves ignore it.
    fn scope(&self, _name: std::fmt::Arguments<'_>) {}

    // ----- matmul family -----

    /// Matrix product with an optional bias: `c = a · b (+ bias)`, or `a · bᵀ` for
    /// [`BLayout::Transposed`].
    ///
    /// # Shapes
    /// `a`: `[M, K]` or `[B, M, K]`; `b`: `[K, N]` / `[N, K]` (a weight shared by every batch item,
    /// f32 or f16) or `[B, K, N]` / `[B, N, K]` (batched, f32); `bias`: `[N]` (weight). Output:
    /// `[M, N]` or `[B, M, N]`.
    fn matmul(
        &self,
        a: &Self::Tensor,
        b: &Self::Tensor,
        bias: Option<&Self::Tensor>,
        layout: BLayout,
    ) -> Result<Self::Tensor, BackendError>;

    // ----- norm family -----

    /// Layer normalisation over the last dimension, biased variance, two-pass in f32.
    ///
    /// # Shapes
    /// `x`: `[.., C]`; `gamma`, `beta`: `[C]` (weights). Output: the shape of `x`.
    fn layer_norm(
        &self,
        x: &Self::Tensor,
        gamma: &Self::Tensor,
        beta: &Self::Tensor,
        eps: f32,
    ) -> Result<Self::Tensor, BackendError>;

    /// Divides each row by its L2 norm, `x / max(‖x‖, 1e-12)` (PyTorch's `F.normalize`).
    ///
    /// # Shapes
    /// `x`: `[.., C]`. Output: the shape of `x`.
    fn l2_normalize(&self, x: &Self::Tensor) -> Result<Self::Tensor, BackendError>;

    // ----- softmax family -----

    /// Softmax over the last dimension (max-subtracted).
    ///
    /// # Shapes
    /// `x`: `[.., C]`. Output: the shape of `x`.
    fn softmax(&self, x: &Self::Tensor) -> Result<Self::Tensor, BackendError>;

    /// The largest value of each row (the few-shot memory's nearest neighbour, `max_j cos`).
    ///
    /// # Shapes
    /// `x`: `[R, C]` (or `[.., C]`, rows flattened). Output: `[R]`.
    fn row_max(&self, x: &Self::Tensor) -> Result<Self::Tensor, BackendError>;

    // ----- elementwise family -----

    /// QuickGELU, `x · sigmoid(1.702 x)`, elementwise.
    fn quick_gelu(&self, x: &Self::Tensor) -> Result<Self::Tensor, BackendError>;

    /// Exact GELU, `x · Φ(x) = ½ x (1 + erf(x / √2))`, elementwise; erf as PyTorch's vectorised
    /// CPU kernel computes it (Abramowitz & Stegun 7.1.26, |error| ≤ 1.5e-7).
    fn gelu(&self, x: &Self::Tensor) -> Result<Self::Tensor, BackendError>;

    /// Elementwise sum of two tensors of the same shape (residual connections).
    fn add(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor, BackendError>;

    /// Multiplies every element by `factor`.
    fn scale(&self, x: &Self::Tensor, factor: f32) -> Result<Self::Tensor, BackendError>;

    /// `x · factor + shift`, elementwise (the transport cost `1 − similarity`).
    fn affine(&self, x: &Self::Tensor, factor: f32, shift: f32) -> Result<Self::Tensor, BackendError>;

    /// The same elements under another shape (no copy; the handle shares the storage).
    ///
    /// # Shapes
    /// `shape`'s product must equal `x`'s element count.
    fn reshape(&self, x: &Self::Tensor, shape: &[usize]) -> Result<Self::Tensor, BackendError>;

    // ----- copy family -----

    /// Rows `start .. start + count` of a matrix (dropping CLIP's class token, EOT pooling).
    ///
    /// # Shapes
    /// `x`: `[R, C]` (f32). Output: `[count, C]`.
    fn slice_rows(&self, x: &Self::Tensor, start: usize, count: usize) -> Result<Self::Tensor, BackendError>;

    /// The rows of `a` followed by the rows of `b` (prepending CLIP's class token).
    ///
    /// # Shapes
    /// `a`: `[Ra, C]`, `b`: `[Rb, C]` (f32). Output: `[Ra + Rb, C]`.
    fn concat_rows(&self, a: &Self::Tensor, b: &Self::Tensor) -> Result<Self::Tensor, BackendError>;

    // ----- attention family -----

    /// Fused multi-head attention over a packed `qkv` tensor (the output of CLIP's `in_proj`),
    /// with scores scaled by `1/√d`. Never materialises the full score matrix on the GPU.
    ///
    /// # Shapes
    /// `qkv`: `[T, 3W]` or `[B, T, 3W]`, columns `[q | k | v]`, each split into `heads` blocks of
    /// `d = W / heads` (d ≤ 128). Output: `[T, W]` or `[B, T, W]`, heads concatenated.
    fn attention(
        &self,
        qkv: &Self::Tensor,
        heads: usize,
        kind: AttentionKind,
        mask: AttentionMask,
    ) -> Result<Self::Tensor, BackendError>;

    // ----- patch_embed family -----

    /// CLIP's patch embedding: a convolution with kernel = stride = `p` and no bias.
    ///
    /// # Shapes
    /// `image`: `[C, H, W]`; `weight`: `[O, C, p, p]` (weight). Output: `[(H/p)·(W/p), O]`,
    /// patches in row-major grid order (remainder pixels ignored, as the convolution does).
    fn patch_embed(&self, image: &Self::Tensor, weight: &Self::Tensor) -> Result<Self::Tensor, BackendError>;

    // ----- resize family -----

    /// Bilinear resize with `align_corners = False`, as PyTorch's `F.interpolate(size=...)`.
    ///
    /// # Shapes
    /// `x`: `[C, H, W]`. Output: `[C, out_h, out_w]`.
    fn resize_bilinear(&self, x: &Self::Tensor, out_h: usize, out_w: usize) -> Result<Self::Tensor, BackendError>;

    // ----- blur family -----

    /// Separable Gaussian filter over the last two dimensions, as SciPy's
    /// `gaussian_filter(x, sigma)` on each `[H, W]` plane: radius `int(4σ + 0.5)`, mode `reflect`
    /// (half-sample symmetric), rows (axis 0) first.
    ///
    /// # Shapes
    /// `x`: `[C, H, W]`. Output: the shape of `x`.
    fn gaussian_blur(&self, x: &Self::Tensor, sigma: f32) -> Result<Self::Tensor, BackendError>;

    // ----- transport family -----

    /// Entropic optimal transport between tokens (rows, mass `1/N` each) and subspaces (columns,
    /// mass `1/M` each) by log-domain Sinkhorn; returns the transport plan.
    ///
    /// # Shapes
    /// `cost`: `[N, M]` or `[B, N, M]` (one plan per batch item; M ≤ 64). Output: same shape.
    fn sinkhorn(&self, cost: &Self::Tensor, params: SinkhornParams) -> Result<Self::Tensor, BackendError>;

    /// Keeps the `k` largest entries of each row (ties: the lower index wins), zeroes the rest and
    /// rescales the kept ones to sum to 1.
    ///
    /// # Shapes
    /// `x`: `[.., M]` with 1 ≤ k ≤ M ≤ 64. Output: the shape of `x`.
    fn top_k_renorm(&self, x: &Self::Tensor, k: usize) -> Result<Self::Tensor, BackendError>;

    // ----- score family -----

    /// Each token's abnormal probability against its own mixture of textual subspaces
    /// (METHOD.md B6): with [`ScoreMix::Embeddings`],
    /// `p_i = softmax([⟨P_i, n̂_i⟩, ⟨P_i, â_i⟩] / τ)[1]` where `n̂_i = normalize(Σ_m w_im t_n^m)` and
    /// `â_i` alike; with [`ScoreMix::Probabilities`],
    /// `p_i = Σ_m w_im softmax([⟨P_i, t_n^m⟩, ⟨P_i, t_a^m⟩] / τ)[1]`.
    ///
    /// # Shapes
    /// `patches`: `[N, D]`; `weights`: `[N, M]` (M ≤ 64); `text_normal`, `text_abnormal`: `[M, D]`
    /// (all f32). Output: `[N]`.
    fn token_probabilities(
        &self,
        patches: &Self::Tensor,
        weights: &Self::Tensor,
        text_normal: &Self::Tensor,
        text_abnormal: &Self::Tensor,
        temperature: f32,
        mix: ScoreMix,
    ) -> Result<Self::Tensor, BackendError>;
}
