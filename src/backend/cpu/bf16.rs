//! `--precision bf16` products: activations and weights rounded to bfloat16 (round to nearest,
//! ties to even, as `VCVTNE2PS2BF16` does), products summed in f32. Weights are rounded once,
//! into [`Bf16Panels`]: blocks of [`PANEL`] output columns whose rows hold pairs of consecutive
//! `k`, the operand layout of AVX512-BF16's `VDPBF16PS` (each f32 lane adds two bf16 products).
//! Where that kernel does not pay (no AVX512-BF16, or a CPU that retires `VDPBF16PS` slowly: see
//! [`dpbf16_pays`]) the weights are rounded once into ordinary f32 [`Panels`] and the
//! activations rounded per product, then multiplied by the f32 GEMM: the same numbers up to the
//! order of the f32 sums (products of two bf16 values are exact in f32).

use super::matmul::Panels;
#[cfg(target_arch = "x86_64")]
use super::matmul::PANEL;
#[cfg(target_arch = "x86_64")]
use super::par::{parallel_parts, SharedOut};
use crate::backend::BLayout;

/// `x` rounded to the nearest bfloat16 (ties to even), as its 16 bits; NaN stays NaN.
pub fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    if x.is_nan() {
        return ((bits >> 16) | 0x40) as u16;
    }
    let round = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(round) >> 16) as u16
}

/// The f32 value of bfloat16 bits (exact).
pub fn from_bf16(h: u16) -> f32 {
    f32::from_bits(u32::from(h) << 16)
}

/// `x` rounded to bfloat16, as f32.
pub fn round_bf16(x: f32) -> f32 {
    from_bf16(to_bf16(x))
}

#[cfg(target_arch = "x86_64")]
/// A `[k, n]` weight rounded to bf16 in panels of [`PANEL`] columns (the last zero-padded): for
/// panel `p` and pair `q`, 2·PANEL values `b[2q][c], b[2q+1][c]` for its columns `c` in order
/// (an odd `k` is padded with a zero row).
pub struct Bf16Panels {
    data: Vec<u16>,
    k: usize,
    n: usize,
}

#[cfg(target_arch = "x86_64")]
impl Bf16Panels {
    /// Rounds and rearranges `b`, a `[k, n]` matrix stored in `layout`.
    pub fn new(b: &[f32], layout: BLayout, k: usize, n: usize) -> Self {
        let pairs = k.div_ceil(2);
        let count = n.div_ceil(PANEL);
        let mut data = vec![0u16; count * pairs * 2 * PANEL];
        let at = |r: usize, c: usize| match layout {
            BLayout::RowMajor => b[r * n + c],
            BLayout::Transposed => b[c * k + r],
        };
        for (p, panel) in data.chunks_mut(pairs * 2 * PANEL).enumerate() {
            for c in p * PANEL..n.min((p + 1) * PANEL) {
                let j = c - p * PANEL;
                for r in 0..k {
                    panel[(r / 2) * 2 * PANEL + 2 * j + r % 2] = to_bf16(at(r, c));
                }
            }
        }
        Bf16Panels { data, k, n }
    }

    fn pairs(&self) -> usize {
        self.k.div_ceil(2)
    }

    /// Panel `p`'s values.
    fn panel(&self, p: usize) -> &[u16] {
        let len = self.pairs() * 2 * PANEL;
        &self.data[p * len..(p + 1) * len]
    }
}

#[cfg(target_arch = "x86_64")]
/// Rows of the micro-kernel (6 × 64 outputs: 24 accumulator registers).
const MR: usize = 6;
#[cfg(target_arch = "x86_64")]
/// Rows per block a thread keeps in cache while it sweeps its panels.
const MC: usize = 16 * MR;

#[cfg(target_arch = "x86_64")]
/// `a` (`[m, k]`) rounded to bf16, rows padded to an even length and their count to a multiple
/// of [`MR`] with zeros.
fn round_rows(a: &[f32], m: usize, k: usize) -> (Vec<u16>, usize) {
    let row = k.div_ceil(2) * 2;
    let mut out = vec![0u16; m.div_ceil(MR) * MR * row];
    for (src, dst) in a.chunks_exact(k).zip(out.chunks_exact_mut(row)) {
        for (d, &s) in dst.iter_mut().zip(src) {
            *d = to_bf16(s);
        }
    }
    (out, row)
}

/// `a` with every value rounded to bf16 (as f32).
pub fn round_all(a: &[f32]) -> Vec<f32> {
    a.iter().map(|&x| round_bf16(x)).collect()
}

/// `b` (a `[k, n]` matrix in `layout`) rounded to bf16, as f32 [`Panels`] for the f32 GEMM.
pub fn rounded_panels(b: &[f32], layout: BLayout, k: usize, n: usize) -> Panels {
    Panels::new(&round_all(b), layout, k, n)
}

/// `c[m×n] = bf16(a[m×k]) · b (+ bias)` with f32 sums by the AVX512-BF16 kernel; `c` is
/// overwritten. Threads take runs of panels (output columns), as
/// [`super::matmul::matmul_panels`] does. Only where [`has_avx512_bf16`] holds.
#[cfg(target_arch = "x86_64")]
pub fn matmul_bf16(a: &[f32], b: &Bf16Panels, bias: Option<&[f32]>, m: usize, c: &mut [f32]) {
    let (k, n) = (b.k, b.n);
    debug_assert_eq!(a.len(), m * k);
    debug_assert_eq!(c.len(), m * n);
    assert!(has_avx512_bf16(), "matmul_bf16 needs AVX512-BF16");
    let (rows, row) = round_rows(a, m, k);
    let out = SharedOut::new(c);
    parallel_parts(n.div_ceil(PANEL), m * k * n, |panels| {
        // SAFETY: the CPU has the kernel's features (asserted above); each thread owns its panels.
        unsafe { avx512::panels(&rows, row, b, bias, m, panels, out) };
    });
}

/// Whether this CPU has AVX512-BF16 (`VDPBF16PS`).
#[cfg(target_arch = "x86_64")]
pub fn has_avx512_bf16() -> bool {
    std::arch::is_x86_feature_detected!("avx512bf16") && std::arch::is_x86_feature_detected!("avx512f")
}

/// Whether the AVX512-BF16 kernel beats the portable path here. `VDPBF16PS` does twice an
/// FMA's work, but some CPUs retire it at half the FMA's rate (this project's 2-core Xeon VM:
/// 85 against 175 GFLOP/s a core), where f32 GEMM on the rounded values is faster; so both
/// instructions are timed once per process (about a millisecond) and the kernel is used only
/// where it is clearly ahead.
pub fn dpbf16_pays() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static PAYS: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *PAYS.get_or_init(|| has_avx512_bf16() && avx512::dpbf16_flops_ratio() > 1.3)
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// Which kernel bf16 products use here, for `describe`.
pub fn kernel_name() -> &'static str {
    if dpbf16_pays() {
        "AVX512-BF16"
    } else {
        "f32 FMA on bf16 values"
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::matmul::matmul_panels;

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len).map(|i| ((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.0 - 1.0).collect()
    }

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        // 1 + 2^-8 lies halfway between 1 and 1 + 2^-7: ties go to the even 1.
        assert_eq!(round_bf16(1.0 + 1.0 / 256.0), 1.0);
        assert_eq!(round_bf16(1.0 + 3.0 / 256.0), 1.0 + 4.0 / 256.0);
        assert_eq!(round_bf16(-2.5e-3), -0.002_502_441_4);
        assert!(round_bf16(f32::NAN).is_nan());
        assert_eq!(round_bf16(f32::INFINITY), f32::INFINITY);
        assert_eq!(round_bf16(f32::MAX), f32::INFINITY);
    }

    /// Both bf16 paths (the f32 GEMM on rounded values, and the AVX512-BF16 kernel where the
    /// CPU has it, whether or not it is the one used) against an f64 product of the rounded
    /// operands, on the edge shapes: rows not a multiple of 6, odd k, partial and several
    /// panels, with and without bias, both layouts.
    #[test]
    fn products_equal_the_rounded_operands_product() {
        for &(m, k, n) in &[(1, 1, 1), (5, 7, 63), (7, 64, 64), (13, 33, 65), (97, 130, 130), (200, 96, 200)] {
            for layout in [BLayout::RowMajor, BLayout::Transposed] {
                for with_bias in [false, true] {
                    let (a, b, bias) = (values(m * k, 1), values(k * n, 2), values(n, 3));
                    let bias = with_bias.then_some(&bias[..]);
                    let mut paths = Vec::new();
                    let mut c = vec![f32::NAN; m * n];
                    matmul_panels(&round_all(&a), &rounded_panels(&b, layout, k, n), bias, m, &mut c);
                    paths.push(("f32 GEMM on rounded values", c));
                    #[cfg(target_arch = "x86_64")]
                    if has_avx512_bf16() {
                        let mut c = vec![f32::NAN; m * n];
                        matmul_bf16(&a, &Bf16Panels::new(&b, layout, k, n), bias, m, &mut c);
                        paths.push(("AVX512-BF16", c));
                    }
                    for (path, c) in &paths {
                        for i in 0..m {
                            for j in 0..n {
                                let mut want = bias.map_or(0.0, |bv| f64::from(bv[j]));
                                for p in 0..k {
                                    let bv = match layout {
                                        BLayout::RowMajor => b[p * n + j],
                                        BLayout::Transposed => b[j * k + p],
                                    };
                                    want += f64::from(round_bf16(a[i * k + p])) * f64::from(round_bf16(bv));
                                }
                                let got = f64::from(c[i * n + j]);
                                assert!(
                                    (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                                    "{path} {m}x{k}x{n} {layout:?} bias {with_bias} [{i},{j}]: {got} vs {want}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}
