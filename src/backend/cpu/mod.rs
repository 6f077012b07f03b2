//! The CPU backend: every op as a plain slice function (the "twin" of its WGSL kernel, named
//! and filed the same way), wrapped by [`CpuBackend`]. It is the fallback device, the oracle the
//! GPU kernels are tested against, and what training's text-side maths runs on.

pub mod attention;
pub mod bf16;
pub mod blur;
pub mod copy;
pub mod elementwise;
pub mod matmul;
pub mod norm;
mod par;
pub mod patch_embed;
mod pool;
pub mod resize;
pub mod score;
mod simd;
pub mod softmax;
mod tensor;
pub mod transport;

use tensor::Bf16Operand;
pub use tensor::CpuTensor;

use super::{
    check, AttentionKind, AttentionMask, BLayout, Backend, BackendError, DType, ScoreMix, SinkhornParams, TensorInfo,
};

/// The arithmetic of the CPU backend's large products (`--precision`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// f32 throughout.
    #[default]
    F32,
    /// Products of activations with weight matrices of at least [`BF16_MIN`] × [`BF16_MIN`]
    /// (the ViT's linear layers and projections) take both operands rounded to bfloat16 and sum
    /// in f32 (AVX512-BF16 where the CPU has it); everything else stays f32.
    Bf16,
}

impl std::str::FromStr for Precision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            other => Err(format!("unknown precision {other:?}; expected f32 or bf16")),
        }
    }
}

/// The smallest `k` and `n` of a weight product that [`Precision::Bf16`] rounds.
pub const BF16_MIN: usize = 64;

/// The multi-threaded CPU implementation of [`Backend`].
#[derive(Debug, Default, Clone)]
pub struct CpuBackend {
    precision: Precision,
}

impl CpuBackend {
    /// A CPU backend using rayon's global thread pool (all cores unless `RAYON_NUM_THREADS`).
    pub fn new() -> Self {
        CpuBackend::default()
    }

    /// A CPU backend whose large products run at `precision`.
    pub fn with_precision(precision: Precision) -> Self {
        CpuBackend { precision }
    }

    /// The precision of the large products.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Number of worker threads ops may use.
    pub fn threads(&self) -> usize {
        par::threads()
    }

    /// An op writing every element of an output shaped like `x`.
    fn unary(x: &CpuTensor, f: impl FnOnce(&[f32], &mut [f32])) -> CpuTensor {
        let mut out = pool::output(x.len());
        f(x.data(), &mut out);
        CpuTensor::new(out, x.shape.clone())
    }
}

impl Backend for CpuBackend {
    type Tensor = CpuTensor;

    fn describe(&self) -> String {
        match self.precision {
            Precision::F32 => format!("cpu ({} threads)", self.threads()),
            Precision::Bf16 => format!("cpu ({} threads, bf16 products: {})", self.threads(), bf16::kernel_name()),
        }
    }

    fn upload(&self, data: &[f32], shape: &[usize]) -> Result<CpuTensor, BackendError> {
        check::upload(data.len(), shape)?;
        Ok(CpuTensor::new(data.to_vec(), shape.to_vec()))
    }

    fn upload_f16(&self, data: &[half::f16], shape: &[usize]) -> Result<CpuTensor, BackendError> {
        check::upload(data.len(), shape)?;
        let wide = data.iter().map(|v| v.to_f32()).collect();
        Ok(CpuTensor::with_dtype(wide, shape.to_vec(), DType::F16))
    }

    async fn read(&self, t: &CpuTensor) -> Result<Vec<f32>, BackendError> {
        Ok(t.data().to_vec())
    }

    fn flush(&self) -> Result<(), BackendError> {
        Ok(())
    }

    fn matmul(
        &self,
        a: &CpuTensor,
        b: &CpuTensor,
        bias: Option<&CpuTensor>,
        layout: BLayout,
    ) -> Result<CpuTensor, BackendError> {
        let d = check::matmul(a, b, bias, layout)?;
        let mut out = pool::output(d.batch * d.m * d.n);
        let bias = bias.map(|t| t.data());
        // A shared b multiplies all batch items' rows at once.
        let rows = d.batch * d.m;
        if self.precision == Precision::Bf16 && !d.b_batched && d.k >= BF16_MIN && d.n >= BF16_MIN {
            match b.bf16_operand(layout, d.k, d.n) {
                #[cfg(target_arch = "x86_64")]
                Bf16Operand::Kernel(p) => bf16::matmul_bf16(a.data(), p, bias, rows, &mut out),
                Bf16Operand::Rounded(p) => matmul::matmul_panels(&bf16::round_all(a.data()), p, bias, rows, &mut out),
            }
            let mut shape = a.shape.clone();
            if let Some(last) = shape.last_mut() {
                *last = d.n;
            }
            return Ok(CpuTensor::new(out, shape));
        }
        let panels = (!d.b_batched && matmul::wants_panels(rows, d.k, d.n)).then(|| b.panels(layout, d.k, d.n));
        if let Some(panels) = panels.flatten() {
            matmul::matmul_panels(a.data(), panels, bias, rows, &mut out);
        } else {
            let b_step = if d.b_batched { d.k * d.n } else { 0 };
            for i in 0..d.batch {
                let a_i = &a.data()[i * d.m * d.k..(i + 1) * d.m * d.k];
                let b_i = &b.data()[i * b_step..i * b_step + d.k * d.n];
                let c_i = &mut out[i * d.m * d.n..(i + 1) * d.m * d.n];
                matmul::matmul(a_i, b_i, bias, layout, d.m, d.k, d.n, c_i);
            }
        }
        let mut shape = a.shape.clone();
        if let Some(last) = shape.last_mut() {
            *last = d.n;
        }
        Ok(CpuTensor::new(out, shape))
    }

    fn layer_norm(
        &self,
        x: &CpuTensor,
        gamma: &CpuTensor,
        beta: &CpuTensor,
        eps: f32,
    ) -> Result<CpuTensor, BackendError> {
        check::layer_norm(x, gamma, beta, eps)?;
        Ok(Self::unary(x, |x, out| norm::layer_norm(x, gamma.data(), beta.data(), eps, out)))
    }

    fn l2_normalize(&self, x: &CpuTensor) -> Result<CpuTensor, BackendError> {
        let (_, cols) = check::rows_cols("l2_normalize", "x", x)?;
        Ok(Self::unary(x, |x, out| norm::l2_normalize(x, cols, out)))
    }

    fn softmax(&self, x: &CpuTensor) -> Result<CpuTensor, BackendError> {
        let (_, cols) = check::rows_cols("softmax", "x", x)?;
        Ok(Self::unary(x, |x, out| softmax::softmax(x, cols, out)))
    }

    fn row_max(&self, x: &CpuTensor) -> Result<CpuTensor, BackendError> {
        let (rows, cols) = check::rows_cols("row_max", "x", x)?;
        let mut out = pool::output(rows);
        softmax::row_max(x.data(), cols, &mut out);
        Ok(CpuTensor::new(out, vec![rows]))
    }

    fn quick_gelu(&self, x: &CpuTensor) -> Result<CpuTensor, BackendError> {
        check::rows_cols("quick_gelu", "x", x)?;
        Ok(Self::unary(x, |x, out| par::for_each_chunk(x, out, elementwise::quick_gelu)))
    }

    fn gelu(&self, x: &CpuTensor) -> Result<CpuTensor, BackendError> {
        check::rows_cols("gelu", "x", x)?;
        Ok(Self::unary(x, |x, out| par::for_each_chunk(x, out, elementwise::gelu)))
    }

    fn add(&self, a: &CpuTensor, b: &CpuTensor) -> Result<CpuTensor, BackendError> {
        check::same_shape("add", a, b)?;
        Ok(Self::unary(a, |a, out| elementwise::add(a, b.data(), out)))
    }

    fn scale(&self, x: &CpuTensor, factor: f32) -> Result<CpuTensor, BackendError> {
        check::rows_cols("scale", "x", x)?;
        Ok(Self::unary(x, |x, out| elementwise::scale(x, factor, out)))
    }

    fn affine(&self, x: &CpuTensor, factor: f32, shift: f32) -> Result<CpuTensor, BackendError> {
        check::rows_cols("affine", "x", x)?;
        Ok(Self::unary(x, |x, out| elementwise::affine(x, factor, shift, out)))
    }

    fn reshape(&self, x: &CpuTensor, shape: &[usize]) -> Result<CpuTensor, BackendError> {
        check::reshape(x, shape)?;
        Ok(x.reshaped(shape))
    }

    fn slice_rows(&self, x: &CpuTensor, start: usize, count: usize) -> Result<CpuTensor, BackendError> {
        let cols = check::slice_rows(x, start, count)?;
        Ok(CpuTensor::new(copy::slice_rows(x.data(), cols, start, count), vec![count, cols]))
    }

    fn concat_rows(&self, a: &CpuTensor, b: &CpuTensor) -> Result<CpuTensor, BackendError> {
        let (ra, rb, cols) = check::concat_rows(a, b)?;
        Ok(CpuTensor::new(copy::concat_rows(a.data(), b.data()), vec![ra + rb, cols]))
    }

    fn attention(
        &self,
        qkv: &CpuTensor,
        heads: usize,
        kind: AttentionKind,
        mask: AttentionMask,
    ) -> Result<CpuTensor, BackendError> {
        let d = check::attention(qkv, heads)?;
        let mut out = pool::output(d.batch * d.tokens * d.width);
        attention::attention(qkv.data(), d, kind, mask, &mut out);
        let mut shape = qkv.shape.clone();
        if let Some(last) = shape.last_mut() {
            *last = d.width;
        }
        Ok(CpuTensor::new(out, shape))
    }

    fn patch_embed(&self, image: &CpuTensor, weight: &CpuTensor) -> Result<CpuTensor, BackendError> {
        let d = check::patch_embed(image, weight)?;
        let rows = d.grid_h * d.grid_w;
        let k = d.channels * d.patch * d.patch;
        let mut cols = pool::output(rows * k);
        patch_embed::im2col(image.data(), d, &mut cols);
        let mut out = pool::output(rows * d.out);
        let panels = matmul::wants_panels(rows, k, d.out).then(|| weight.panels(BLayout::Transposed, k, d.out));
        match panels.flatten() {
            Some(panels) => matmul::matmul_panels(&cols, panels, None, rows, &mut out),
            None => matmul::matmul(&cols, weight.data(), None, BLayout::Transposed, rows, k, d.out, &mut out),
        }
        pool::give_back(cols);
        Ok(CpuTensor::new(out, vec![rows, d.out]))
    }

    fn resize_bilinear(&self, x: &CpuTensor, out_h: usize, out_w: usize) -> Result<CpuTensor, BackendError> {
        let (c, h, w) = check::resize_bilinear(x, out_h, out_w)?;
        let mut out = vec![0.0; c * out_h * out_w];
        resize::resize_bilinear(x.data(), c, h, w, out_h, out_w, &mut out);
        Ok(CpuTensor::new(out, vec![c, out_h, out_w]))
    }

    fn gaussian_blur(&self, x: &CpuTensor, sigma: f32) -> Result<CpuTensor, BackendError> {
        let (c, h, w) = check::gaussian_blur(x, sigma)?;
        let weights = blur::gaussian_weights(sigma);
        let mut tmp = vec![0.0; x.len()];
        blur::blur_axis(x.data(), c, h, w, &weights, 0, &mut tmp);
        let mut out = vec![0.0; x.len()];
        blur::blur_axis(&tmp, c, h, w, &weights, 1, &mut out);
        Ok(CpuTensor::new(out, x.shape.clone()))
    }

    fn sinkhorn(&self, cost: &CpuTensor, params: SinkhornParams) -> Result<CpuTensor, BackendError> {
        let (b, n, m) = check::sinkhorn(cost, &params)?;
        let mut plan = vec![0.0; b * n * m];
        for (c, p) in cost.data().chunks_exact(n * m).zip(plan.chunks_exact_mut(n * m)) {
            transport::sinkhorn(c, n, m, params, p);
        }
        Ok(CpuTensor::new(plan, cost.shape.clone()))
    }

    fn top_k_renorm(&self, x: &CpuTensor, k: usize) -> Result<CpuTensor, BackendError> {
        let (_, m) = check::top_k_renorm(x, k)?;
        Ok(Self::unary(x, |x, out| transport::top_k_renorm(x, m, k, out)))
    }

    fn token_probabilities(
        &self,
        patches: &CpuTensor,
        weights: &CpuTensor,
        text_normal: &CpuTensor,
        text_abnormal: &CpuTensor,
        temperature: f32,
        mix: ScoreMix,
    ) -> Result<CpuTensor, BackendError> {
        let (n, d, m) = check::token_probabilities(patches, weights, text_normal, text_abnormal, temperature)?;
        let (p, w, t_n, t_a) = (patches.data(), weights.data(), text_normal.data(), text_abnormal.data());
        let mut out = vec![0.0; n];
        par::for_each_row(&mut out, 1, |i, o| {
            o[0] = score::token_probability(&p[i * d..(i + 1) * d], &w[i * m..(i + 1) * m], t_n, t_a, temperature, mix);
        });
        Ok(CpuTensor::new(out, vec![n]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len).map(|i| ((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.0 - 1.0).collect()
    }

    /// A weight's first product goes through gemm directly, later ones through its panels:
    /// both must agree (to rounding: the panel GEMMs split the work differently).
    #[test]
    fn repeated_products_match_the_first() {
        let be = CpuBackend::new();
        for &(m, k, n) in &[(255, 33, 257), (130, 768, 66), (197, 64, 200)] {
            for layout in [BLayout::RowMajor, BLayout::Transposed] {
                let a = be.upload(&values(m * k, 1), &[m, k]).unwrap();
                let shape = match layout {
                    BLayout::RowMajor => [k, n],
                    BLayout::Transposed => [n, k],
                };
                let b = be.upload(&values(k * n, 2), &shape).unwrap();
                let bias = be.upload(&values(n, 3), &[n]).unwrap();
                let first = be.matmul(&a, &b, Some(&bias), layout).unwrap();
                assert!(!b.has_panels());
                for _ in 0..2 {
                    let again = be.matmul(&a, &b, Some(&bias), layout).unwrap();
                    for (i, (&x, &y)) in first.data().iter().zip(again.data()).enumerate() {
                        assert!((x - y).abs() <= 1e-5 * (1.0 + x.abs()), "{m}x{k}x{n} {layout:?} [{i}]: {x} vs {y}");
                    }
                }
                assert!(b.has_panels());
            }
        }
    }
}
