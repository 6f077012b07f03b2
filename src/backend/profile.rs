//! The per-op profile: a backend that runs every op on another one, waits for it
//! ([`Backend::finish`]: on the GPU one submission per op), and records its time with the op's
//! name, its family and the model part that [`Backend::scope`] last named.
//!
//! On the CPU the times are the ops' own (they run as called; the wait is free). On the GPU each
//! op becomes its own submission and fence, so the times include a submission's fixed cost and
//! their sum exceeds an unprofiled pass; timestamp queries inside one submission (which lavapipe,
//! SwiftShader and real GPUs offer) would remove that cost and are the next step.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use super::{AttentionKind, AttentionMask, BLayout, Backend, BackendError, ScoreMix, SinkhornParams};

/// One op's run.
#[derive(Debug, Clone, PartialEq)]
pub struct OpTime {
    /// The op (`matmul`, `layer_norm`, …).
    pub op: &'static str,
    /// Its family, as the op interface groups them (`matmul`, `norm`, `elementwise`, …).
    pub family: &'static str,
    /// The model part it ran in ("vision layer 3"; empty before the first scope).
    pub scope: String,
    /// Seconds, including the wait for the op to finish.
    pub seconds: f64,
}

/// The family of `op`, as the op interface's sections group them.
pub fn family(op: &str) -> &'static str {
    match op {
        "matmul" => "matmul",
        "layer_norm" | "l2_normalize" => "norm",
        "softmax" | "row_max" => "softmax",
        "quick_gelu" | "gelu" | "add" | "scale" | "affine" => "elementwise",
        "slice_rows" | "concat_rows" => "copy",
        "attention" => "attention",
        "patch_embed" => "patch_embed",
        "resize_bilinear" => "resize",
        "gaussian_blur" => "blur",
        "sinkhorn" | "top_k_renorm" => "transport",
        "token_probabilities" => "score",
        "upload" | "upload_f16" | "read" => "transfer",
        _ => "other",
    }
}

/// `inner` with every op timed.
pub struct Profiled<'a, B: Backend> {
    inner: &'a B,
    scope: Mutex<String>,
    times: Mutex<Vec<OpTime>>,
}

impl<'a, B: Backend> Profiled<'a, B> {
    /// Profiles the ops run on `inner`.
    pub fn new(inner: &'a B) -> Self {
        Profiled { inner, scope: Mutex::new(String::new()), times: Mutex::new(Vec::new()) }
    }

    /// The ops recorded so far, in order, and forgets them.
    pub fn take(&self) -> Vec<OpTime> {
        self.times.lock().map(|mut t| std::mem::take(&mut *t)).unwrap_or_default()
    }

    fn time<T>(&self, op: &'static str, run: impl FnOnce() -> Result<T, BackendError>) -> Result<T, BackendError> {
        let start = Instant::now();
        let out = run()?;
        self.inner.finish()?;
        let seconds = start.elapsed().as_secs_f64();
        let scope = self.scope.lock().map(|s| s.clone()).unwrap_or_default();
        if let Ok(mut t) = self.times.lock() {
            t.push(OpTime { op, family: family(op), scope, seconds });
        }
        Ok(out)
    }
}

/// Sums of seconds and counts by a key.
pub type Totals = BTreeMap<String, (f64, usize)>;

/// `times` summed by `key`.
pub fn totals(times: &[OpTime], key: impl Fn(&OpTime) -> String) -> Totals {
    let mut out = Totals::new();
    for t in times {
        let e = out.entry(key(t)).or_insert((0.0, 0));
        e.0 += t.seconds;
        e.1 += 1;
    }
    out
}

impl<B: Backend> Backend for Profiled<'_, B> {
    type Tensor = B::Tensor;

    fn describe(&self) -> String {
        format!("{} (profiled: one op at a time)", self.inner.describe())
    }
    fn upload(&self, data: &[f32], shape: &[usize]) -> Result<B::Tensor, BackendError> {
        self.time("upload", || self.inner.upload(data, shape))
    }
    fn upload_f16(&self, data: &[half::f16], shape: &[usize]) -> Result<B::Tensor, BackendError> {
        self.time("upload_f16", || self.inner.upload_f16(data, shape))
    }
    async fn read(&self, t: &B::Tensor) -> Result<Vec<f32>, BackendError> {
        let start = Instant::now();
        let out = self.inner.read(t).await?;
        let scope = self.scope.lock().map(|s| s.clone()).unwrap_or_default();
        if let Ok(mut times) = self.times.lock() {
            times.push(OpTime { op: "read", family: "transfer", scope, seconds: start.elapsed().as_secs_f64() });
        }
        Ok(out)
    }
    fn flush(&self) -> Result<(), BackendError> {
        self.inner.flush()
    }
    fn finish(&self) -> Result<(), BackendError> {
        self.inner.finish()
    }
    fn scope(&self, name: std::fmt::Arguments<'_>) {
        if let Ok(mut s) = self.scope.lock() {
            *s = name.to_string();
        }
    }
    fn matmul(
        &self,
        a: &B::Tensor,
        b: &B::Tensor,
        bias: Option<&B::Tensor>,
        layout: BLayout,
    ) -> Result<B::Tensor, BackendError> {
        self.time("matmul", || self.inner.matmul(a, b, bias, layout))
    }
    fn layer_norm(&self, x: &B::Tensor, g: &B::Tensor, b: &B::Tensor, eps: f32) -> Result<B::Tensor, BackendError> {
        self.time("layer_norm", || self.inner.layer_norm(x, g, b, eps))
    }
    fn l2_normalize(&self, x: &B::Tensor) -> Result<B::Tensor, BackendError> {
        self.time("l2_normalize", || self.inner.l2_normalize(x))
    }
    fn softmax(&self, x: &B::Tensor) -> Result<B::Tensor, BackendError> {
        self.time("softmax", || self.inner.softmax(x))
    }
    fn row_max(&self, x: &B::Tensor) -> Result<B::Tensor, BackendError> {
        self.time("row_max", || self.inner.row_max(x))
    }
    fn quick_gelu(&self, x: &B::Tensor) -> Result<B::Tensor, BackendError> {
        self.time("quick_gelu", || self.inner.quick_gelu(x))
    }
    fn gelu(&self, x: &B::Tensor) -> Result<B::Tensor, BackendError> {
        self.time("gelu", || self.inner.gelu(x))
    }
    fn add(&self, a: &B::Tensor, b: &B::Tensor) -> Result<B::Tensor, BackendError> {
        self.time("add", || self.inner.add(a, b))
    }
    fn scale(&self, x: &B::Tensor, factor: f32) -> Result<B::Tensor, BackendError> {
        self.time("scale", || self.inner.scale(x, factor))
    }
    fn affine(&self, x: &B::Tensor, factor: f32, shift: f32) -> Result<B::Tensor, BackendError> {
        self.time("affine", || self.inner.affine(x, factor, shift))
    }
    fn reshape(&self, x: &B::Tensor, shape: &[usize]) -> Result<B::Tensor, BackendError> {
        self.inner.reshape(x, shape) // no work: not timed
    }
    fn slice_rows(&self, x: &B::Tensor, start: usize, count: usize) -> Result<B::Tensor, BackendError> {
        self.time("slice_rows", || self.inner.slice_rows(x, start, count))
    }
    fn concat_rows(&self, a: &B::Tensor, b: &B::Tensor) -> Result<B::Tensor, BackendError> {
        self.time("concat_rows", || self.inner.concat_rows(a, b))
    }
    fn attention(
        &self,
        qkv: &B::Tensor,
        heads: usize,
        kind: AttentionKind,
        mask: AttentionMask,
    ) -> Result<B::Tensor, BackendError> {
        self.time("attention", || self.inner.attention(qkv, heads, kind, mask))
    }
    fn patch_embed(&self, image: &B::Tensor, weight: &B::Tensor) -> Result<B::Tensor, BackendError> {
        self.time("patch_embed", || self.inner.patch_embed(image, weight))
    }
    fn resize_bilinear(&self, x: &B::Tensor, out_h: usize, out_w: usize) -> Result<B::Tensor, BackendError> {
        self.time("resize_bilinear", || self.inner.resize_bilinear(x, out_h, out_w))
    }
    fn gaussian_blur(&self, x: &B::Tensor, sigma: f32) -> Result<B::Tensor, BackendError> {
        self.time("gaussian_blur", || self.inner.gaussian_blur(x, sigma))
    }
    fn sinkhorn(&self, cost: &B::Tensor, params: SinkhornParams) -> Result<B::Tensor, BackendError> {
        self.time("sinkhorn", || self.inner.sinkhorn(cost, params))
    }
    fn top_k_renorm(&self, x: &B::Tensor, k: usize) -> Result<B::Tensor, BackendError> {
        self.time("top_k_renorm", || self.inner.top_k_renorm(x, k))
    }
    fn token_probabilities(
        &self,
        patches: &B::Tensor,
        weights: &B::Tensor,
        text_normal: &B::Tensor,
        text_abnormal: &B::Tensor,
        temperature: f32,
        mix: ScoreMix,
    ) -> Result<B::Tensor, BackendError> {
        self.time("token_probabilities", || {
            self.inner.token_probabilities(patches, weights, text_normal, text_abnormal, temperature, mix)
        })
    }
}
