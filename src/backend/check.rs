//! Operand validation shared by both backends, so the CPU and the GPU refuse the same inputs
//! with the same error. Each function returns the dimensions the op then works with.

use super::{BLayout, BackendError, DType, TensorInfo};

/// Largest number of subspaces (columns) the transport kernels handle.
pub const MAX_SUBSPACES: usize = 64;
/// Largest attention head width the fused attention kernel handles.
pub const MAX_HEAD_DIM: usize = 128;

fn shape_err(op: &'static str, operand: &'static str, expected: impl Into<String>, got: &[usize]) -> BackendError {
    BackendError::ShapeMismatch { op, operand, expected: expected.into(), got: got.to_vec() }
}

/// Refuses tensors with a zero dimension (or no dimension at all).
pub fn non_empty(op: &'static str, operand: &'static str, t: &impl TensorInfo) -> Result<(), BackendError> {
    if t.shape().is_empty() || t.shape().contains(&0) {
        return Err(BackendError::EmptyTensor { op, operand, shape: t.shape().to_vec() });
    }
    Ok(())
}

/// Requires an f32 operand (activations are never f16).
pub fn f32_only(op: &'static str, operand: &'static str, t: &impl TensorInfo) -> Result<(), BackendError> {
    if t.dtype() != DType::F32 {
        return Err(BackendError::DTypeMismatch { op, operand, expected: "f32", got: t.dtype().name() });
    }
    Ok(())
}

/// Checks an upload: the data length matches the shape, and the shape is not empty.
pub fn upload(len: usize, shape: &[usize]) -> Result<usize, BackendError> {
    let want = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d));
    match want {
        Some(n) if n == len && n > 0 => Ok(n),
        Some(0) => Err(BackendError::EmptyTensor { op: "upload", operand: "data", shape: shape.to_vec() }),
        _ => Err(shape_err("upload", "data", format!("{len} elements"), shape)),
    }
}

/// An activation of shape `[.., C]` seen as `rows × cols`.
pub fn rows_cols(op: &'static str, operand: &'static str, x: &impl TensorInfo) -> Result<(usize, usize), BackendError> {
    non_empty(op, operand, x)?;
    f32_only(op, operand, x)?;
    let cols = *x.shape().last().unwrap_or(&1);
    Ok((x.len() / cols, cols))
}

/// Dimensions of one matmul call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatmulDims {
    /// Batch items (1 for a rank-2 `a`).
    pub batch: usize,
    /// Rows of `a` per batch item.
    pub m: usize,
    /// Shared dimension.
    pub k: usize,
    /// Columns of the output.
    pub n: usize,
    /// Whether `b` has its own matrix per batch item (else it is shared).
    pub b_batched: bool,
}

/// Validates [`super::Backend::matmul`] operands.
pub fn matmul(
    a: &impl TensorInfo,
    b: &impl TensorInfo,
    bias: Option<&impl TensorInfo>,
    layout: BLayout,
) -> Result<MatmulDims, BackendError> {
    const OP: &str = "matmul";
    non_empty(OP, "a", a)?;
    non_empty(OP, "b", b)?;
    f32_only(OP, "a", a)?;
    let (batch, m, k) = match *a.shape() {
        [m, k] => (1, m, k),
        [bt, m, k] => (bt, m, k),
        _ => return Err(shape_err(OP, "a", "[M, K] or [B, M, K]", a.shape())),
    };
    let (b_batched, r, c) = match *b.shape() {
        [r, c] => (false, r, c),
        [bt, r, c] if a.shape().len() == 3 && bt == batch => (true, r, c),
        _ => return Err(shape_err(OP, "b", format!("[K, N] or [{batch}, K, N] (or N, K transposed)"), b.shape())),
    };
    if b_batched {
        f32_only(OP, "b", b)?;
    }
    let (bk, n) = match layout {
        BLayout::RowMajor => (r, c),
        BLayout::Transposed => (c, r),
    };
    if bk != k {
        let want = match layout {
            BLayout::RowMajor => format!("[{k}, N] to match a's K = {k}"),
            BLayout::Transposed => format!("[N, {k}] to match a's K = {k}"),
        };
        return Err(shape_err(OP, "b", want, b.shape()));
    }
    if let Some(bias) = bias {
        if bias.shape() != [n] {
            return Err(shape_err(OP, "bias", format!("[{n}]"), bias.shape()));
        }
        // The kernel reads bias and b through the same weight decoder.
        if bias.dtype() != b.dtype() {
            return Err(BackendError::DTypeMismatch {
                op: OP,
                operand: "bias",
                expected: b.dtype().name(),
                got: bias.dtype().name(),
            });
        }
    }
    Ok(MatmulDims { batch, m, k, n, b_batched })
}

/// Validates [`super::Backend::layer_norm`] operands; returns `(rows, cols)`.
pub fn layer_norm(
    x: &impl TensorInfo,
    gamma: &impl TensorInfo,
    beta: &impl TensorInfo,
    eps: f32,
) -> Result<(usize, usize), BackendError> {
    const OP: &str = "layer_norm";
    let (rows, cols) = rows_cols(OP, "x", x)?;
    if gamma.shape() != [cols] {
        return Err(shape_err(OP, "gamma", format!("[{cols}]"), gamma.shape()));
    }
    if beta.shape() != [cols] {
        return Err(shape_err(OP, "beta", format!("[{cols}]"), beta.shape()));
    }
    if gamma.dtype() != beta.dtype() {
        return Err(BackendError::DTypeMismatch {
            op: OP,
            operand: "beta",
            expected: gamma.dtype().name(),
            got: beta.dtype().name(),
        });
    }
    if !(eps.is_finite() && eps >= 0.0) {
        return Err(BackendError::InvalidArgument {
            op: OP,
            message: format!("eps must be finite and ≥ 0, got {eps}"),
        });
    }
    Ok((rows, cols))
}

/// Dimensions of one attention call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionDims {
    /// Batch items.
    pub batch: usize,
    /// Tokens per item.
    pub tokens: usize,
    /// Model width W (= heads · head_dim).
    pub width: usize,
    /// Number of heads.
    pub heads: usize,
    /// Width of one head.
    pub head_dim: usize,
}

/// Validates [`super::Backend::attention`] operands.
pub fn attention(qkv: &impl TensorInfo, heads: usize) -> Result<AttentionDims, BackendError> {
    const OP: &str = "attention";
    non_empty(OP, "qkv", qkv)?;
    f32_only(OP, "qkv", qkv)?;
    let (batch, tokens, cols) = match *qkv.shape() {
        [t, c] => (1, t, c),
        [b, t, c] => (b, t, c),
        _ => return Err(shape_err(OP, "qkv", "[T, 3W] or [B, T, 3W]", qkv.shape())),
    };
    if cols % 3 != 0 {
        return Err(shape_err(OP, "qkv", "a last dimension of 3W (q, k and v packed)", qkv.shape()));
    }
    let width = cols / 3;
    if heads == 0 || width % heads != 0 {
        return Err(BackendError::InvalidArgument {
            op: OP,
            message: format!("width {width} is not divisible into {heads} heads"),
        });
    }
    let head_dim = width / heads;
    if head_dim > MAX_HEAD_DIM {
        return Err(BackendError::LimitExceeded {
            op: OP,
            what: "head width",
            needed: head_dim as u64,
            limit: MAX_HEAD_DIM as u64,
            hint: String::new(),
        });
    }
    Ok(AttentionDims { batch, tokens, width, heads, head_dim })
}

/// Dimensions of one patch embedding call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PatchDims {
    /// Input channels.
    pub channels: usize,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Patch size p.
    pub patch: usize,
    /// Output channels.
    pub out: usize,
    /// Patch rows.
    pub grid_h: usize,
    /// Patch columns.
    pub grid_w: usize,
}

/// Validates [`super::Backend::patch_embed`] operands.
pub fn patch_embed(image: &impl TensorInfo, weight: &impl TensorInfo) -> Result<PatchDims, BackendError> {
    const OP: &str = "patch_embed";
    non_empty(OP, "image", image)?;
    non_empty(OP, "weight", weight)?;
    f32_only(OP, "image", image)?;
    let [channels, height, width] = *image.shape() else {
        return Err(shape_err(OP, "image", "[C, H, W]", image.shape()));
    };
    let [out, wc, ph, pw] = *weight.shape() else {
        return Err(shape_err(OP, "weight", "[O, C, p, p]", weight.shape()));
    };
    if wc != channels || ph != pw {
        return Err(shape_err(OP, "weight", format!("[O, {channels}, p, p]"), weight.shape()));
    }
    if height < ph || width < pw {
        return Err(shape_err(OP, "image", format!("at least {ph}×{pw} pixels (one patch)"), image.shape()));
    }
    Ok(PatchDims { channels, height, width, patch: ph, out, grid_h: height / ph, grid_w: width / pw })
}

/// Validates a `[C, H, W]` image-like operand; returns `(C, H, W)`.
pub fn planes(op: &'static str, x: &impl TensorInfo) -> Result<(usize, usize, usize), BackendError> {
    non_empty(op, "x", x)?;
    f32_only(op, "x", x)?;
    match *x.shape() {
        [c, h, w] => Ok((c, h, w)),
        _ => Err(shape_err(op, "x", "[C, H, W]", x.shape())),
    }
}

/// Validates [`super::Backend::resize_bilinear`]; returns `(C, H, W)`.
pub fn resize_bilinear(x: &impl TensorInfo, out_h: usize, out_w: usize) -> Result<(usize, usize, usize), BackendError> {
    let dims = planes("resize_bilinear", x)?;
    if out_h == 0 || out_w == 0 {
        return Err(BackendError::InvalidArgument {
            op: "resize_bilinear",
            message: format!("output size {out_h}×{out_w} must be at least 1×1"),
        });
    }
    Ok(dims)
}

/// Radius of the Gaussian kernel SciPy uses (`truncate = 4`).
pub fn gaussian_radius(sigma: f32) -> usize {
    (4.0 * f64::from(sigma) + 0.5) as usize
}

/// Largest Gaussian radius supported (σ up to 64).
pub const MAX_BLUR_RADIUS: usize = 256;

/// Validates [`super::Backend::gaussian_blur`]; returns `(C, H, W)`.
pub fn gaussian_blur(x: &impl TensorInfo, sigma: f32) -> Result<(usize, usize, usize), BackendError> {
    const OP: &str = "gaussian_blur";
    let dims = planes(OP, x)?;
    if !(sigma.is_finite() && sigma > 0.0) {
        return Err(BackendError::InvalidArgument {
            op: OP,
            message: format!("sigma must be finite and > 0, got {sigma}"),
        });
    }
    let r = gaussian_radius(sigma);
    if r > MAX_BLUR_RADIUS {
        return Err(BackendError::LimitExceeded {
            op: OP,
            what: "kernel radius",
            needed: r as u64,
            limit: MAX_BLUR_RADIUS as u64,
            hint: "; sigma must be at most 64".into(),
        });
    }
    Ok(dims)
}

/// Validates [`super::Backend::sinkhorn`]; returns `(batch, N, M)`.
pub fn sinkhorn(cost: &impl TensorInfo, p: &super::SinkhornParams) -> Result<(usize, usize, usize), BackendError> {
    const OP: &str = "sinkhorn";
    non_empty(OP, "cost", cost)?;
    f32_only(OP, "cost", cost)?;
    let (b, n, m) = match *cost.shape() {
        [n, m] => (1, n, m),
        [b, n, m] => (b, n, m),
        _ => return Err(shape_err(OP, "cost", "[N, M] or [B, N, M]", cost.shape())),
    };
    subspace_limit(OP, "subspaces (M)", m)?;
    if !(p.eps.is_finite() && p.eps > 0.0) || p.max_iters == 0 || !(p.tol.is_finite() && p.tol >= 0.0) {
        return Err(BackendError::InvalidArgument {
            op: OP,
            message: format!("need eps > 0, max_iters ≥ 1, tol ≥ 0; got {p:?}"),
        });
    }
    Ok((b, n, m))
}

/// Validates [`super::Backend::top_k_renorm`]; returns `(rows, M)`.
pub fn top_k_renorm(x: &impl TensorInfo, k: usize) -> Result<(usize, usize), BackendError> {
    const OP: &str = "top_k_renorm";
    let (rows, m) = rows_cols(OP, "x", x)?;
    subspace_limit(OP, "columns (M)", m)?;
    if k == 0 || k > m {
        return Err(BackendError::InvalidArgument { op: OP, message: format!("k must be in 1..={m}, got {k}") });
    }
    Ok((rows, m))
}

/// Requires two operands of identical shape (both f32).
pub fn same_shape(op: &'static str, a: &impl TensorInfo, b: &impl TensorInfo) -> Result<usize, BackendError> {
    non_empty(op, "a", a)?;
    f32_only(op, "a", a)?;
    f32_only(op, "b", b)?;
    if a.shape() != b.shape() {
        return Err(shape_err(op, "b", format!("{:?} (the shape of a)", a.shape()), b.shape()));
    }
    Ok(a.len())
}

/// A rank-2 f32 operand, as `(rows, cols)`.
pub fn matrix(op: &'static str, operand: &'static str, x: &impl TensorInfo) -> Result<(usize, usize), BackendError> {
    non_empty(op, operand, x)?;
    f32_only(op, operand, x)?;
    match *x.shape() {
        [r, c] => Ok((r, c)),
        _ => Err(shape_err(op, operand, "[rows, cols]", x.shape())),
    }
}

/// Checks `slice_rows`: a non-empty row range inside `x`. Returns the columns.
pub fn slice_rows(x: &impl TensorInfo, start: usize, count: usize) -> Result<usize, BackendError> {
    const OP: &str = "slice_rows";
    let (rows, cols) = matrix(OP, "x", x)?;
    if count == 0 || start.checked_add(count).is_none_or(|end| end > rows) {
        return Err(BackendError::InvalidArgument {
            op: OP,
            message: format!(
                "rows {start}..{} are not a non-empty range inside {rows} rows",
                start.saturating_add(count)
            ),
        });
    }
    Ok(cols)
}

/// Checks `concat_rows`: two matrices with the same number of columns. Returns `(ra, rb, cols)`.
pub fn concat_rows(a: &impl TensorInfo, b: &impl TensorInfo) -> Result<(usize, usize, usize), BackendError> {
    const OP: &str = "concat_rows";
    let (ra, cols) = matrix(OP, "a", a)?;
    let (rb, cb) = matrix(OP, "b", b)?;
    if cb != cols {
        return Err(shape_err(OP, "b", format!("[rows, {cols}] (the columns of a)"), b.shape()));
    }
    Ok((ra, rb, cols))
}

/// Checks `reshape`: the new shape holds exactly the same number of elements.
pub fn reshape(x: &impl TensorInfo, shape: &[usize]) -> Result<(), BackendError> {
    let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if n != Some(x.len()) {
        return Err(shape_err("reshape", "shape", format!("{} elements (those of {:?})", x.len(), x.shape()), shape));
    }
    Ok(())
}

/// Validates [`super::Backend::token_probabilities`]; returns `(N, D, M)`.
pub fn token_probabilities(
    patches: &impl TensorInfo,
    weights: &impl TensorInfo,
    text_normal: &impl TensorInfo,
    text_abnormal: &impl TensorInfo,
    temperature: f32,
) -> Result<(usize, usize, usize), BackendError> {
    const OP: &str = "token_probabilities";
    let (n, d) = matrix(OP, "patches", patches)?;
    let (wn, m) = matrix(OP, "weights", weights)?;
    if wn != n {
        return Err(shape_err(OP, "weights", format!("[{n}, M] (a row per token)"), weights.shape()));
    }
    subspace_limit(OP, "subspaces (M)", m)?;
    for (operand, shape) in [
        ("text_normal", matrix(OP, "text_normal", text_normal)?),
        ("text_abnormal", matrix(OP, "text_abnormal", text_abnormal)?),
    ] {
        if shape != (m, d) {
            return Err(shape_err(OP, operand, format!("[{m}, {d}] (subspaces × patch width)"), &[shape.0, shape.1]));
        }
    }
    if !(temperature.is_finite() && temperature > 0.0) {
        return Err(BackendError::InvalidArgument {
            op: OP,
            message: format!("temperature must be > 0, got {temperature}"),
        });
    }
    Ok((n, d, m))
}

/// At most [`MAX_SUBSPACES`] columns, the transport and scoring kernels' fixed workgroup arrays.
fn subspace_limit(op: &'static str, what: &'static str, m: usize) -> Result<(), BackendError> {
    if m > MAX_SUBSPACES {
        return Err(BackendError::LimitExceeded {
            op,
            what,
            needed: m as u64,
            limit: MAX_SUBSPACES as u64,
            hint: String::new(),
        });
    }
    Ok(())
}
