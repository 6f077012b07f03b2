//! CPU twin of `shaders/matmul.wgsl`: f32 GEMM through the `gemm` crate (AVX2/AVX-512/NEON
//! kernels, rayon threads natively), with a transposed-weight form expressed as strides.
//!
//! Large products go through [`Panels`]: `b` rearranged once into blocks of [`PANEL`] columns,
//! each a contiguous row-major `[k, PANEL]` matrix, which threads then multiply panel by panel
//! with single-threaded GEMMs. Weights come from main memory on every pass (a model's weights
//! do not fit in cache), and gemm's own packing of a `[k, n]` matrix reads them in 256-byte
//! pieces `4n` bytes apart, which no prefetcher follows; a panel is read front to back. At CLIP
//! shapes this doubles GEMM throughput at 197 tokens and gains ~20% at 1370.

use super::par::{for_each_row, gemm_parallelism, parallel_parts, threads, SharedOut};
use crate::backend::BLayout;

/// Columns per panel: the width of gemm's AVX-512 f32 micro-kernel along the output features.
pub const PANEL: usize = 64;

/// `c[m×n] = a[m×k] · b (+ bias)` where `b` is `[k, n]` ([`BLayout::RowMajor`]) or `[n, k]`
/// ([`BLayout::Transposed`]). `c` is overwritten.
#[allow(clippy::too_many_arguments)] // a slice-level twin: the kernel's bindings plus its params
pub fn matmul(
    a: &[f32],
    b: &[f32],
    bias: Option<&[f32]>,
    layout: BLayout,
    m: usize,
    k: usize,
    n: usize,
    c: &mut [f32],
) {
    debug_assert_eq!(a.len(), m * k);
    debug_assert_eq!(b.len(), k * n);
    debug_assert_eq!(c.len(), m * n);
    // Strides of b seen as a [k, n] matrix: (row stride, column stride).
    let (b_rs, b_cs) = match layout {
        BLayout::RowMajor => (n as isize, 1),
        BLayout::Transposed => (1, k as isize),
    };
    let read_dst = fill_bias(c, n, bias);
    // SAFETY: the pointers cover m×k, k×n and m×n elements with the strides given (checked by
    // the debug asserts above and by `check::matmul` at the API edge); dst does not alias inputs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            read_dst,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            b_cs,
            b_rs,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm_parallelism(m * n * k),
        );
    }
}

/// Copies `bias` into every `n`-wide row of `c`; returns whether it did (the GEMM then adds to `c`).
fn fill_bias(c: &mut [f32], n: usize, bias: Option<&[f32]>) -> bool {
    match bias {
        Some(bias) => {
            for row in c.chunks_exact_mut(n) {
                row.copy_from_slice(bias);
            }
            true
        }
        None => false,
    }
}

/// Whether an `m×k·k×n` product is large enough for [`matmul_panels`] to pay for building
/// [`Panels`] (below it, gemm's own blocking is as fast).
pub fn wants_panels(m: usize, k: usize, n: usize) -> bool {
    m >= 32 && n >= PANEL && m.saturating_mul(k).saturating_mul(n) >= 1 << 20
}

/// `b` (a `[k, n]` matrix in either layout) as column panels: panel `p` holds columns
/// `p·PANEL .. min(n, (p+1)·PANEL)` as a contiguous row-major `[k, width]` block.
#[derive(Debug)]
pub struct Panels {
    data: Vec<f32>,
    k: usize,
    n: usize,
}

impl Panels {
    /// Rearranges `b` (`[k, n]` row-major, or `[n, k]` when `layout` is transposed). Threads
    /// take runs of panels; each reads its part of `b` front to back.
    pub fn new(b: &[f32], layout: BLayout, k: usize, n: usize) -> Self {
        debug_assert_eq!(b.len(), k * n);
        let mut data = vec![0.0; k * n];
        let per_part = n.div_ceil(PANEL).div_ceil(threads());
        for_each_row(&mut data, k * PANEL * per_part, |part, panels| {
            let c0 = part * per_part * PANEL;
            match layout {
                // Row by row, each row's piece of every panel of the run.
                BLayout::RowMajor => {
                    for r in 0..k {
                        for (i, panel) in panels.chunks_mut(k * PANEL).enumerate() {
                            let (col, width) = (c0 + i * PANEL, panel.len() / k);
                            panel[r * width..(r + 1) * width].copy_from_slice(&b[r * n + col..r * n + col + width]);
                        }
                    }
                }
                // Panel by panel: its columns are `width` consecutive rows of b.
                BLayout::Transposed => {
                    for (i, panel) in panels.chunks_mut(k * PANEL).enumerate() {
                        let (col, width) = (c0 + i * PANEL, panel.len() / k);
                        for (j, src) in b[col * k..(col + width) * k].chunks_exact(k).enumerate() {
                            for (r, &v) in src.iter().enumerate() {
                                panel[r * width + j] = v;
                            }
                        }
                    }
                }
            }
        });
        Panels { data, k, n }
    }

    /// Number of panels.
    fn count(&self) -> usize {
        self.n.div_ceil(PANEL)
    }

    /// Panel `p`: its first column, its width and its `[k, width]` elements.
    fn panel(&self, p: usize) -> (usize, usize, &[f32]) {
        let c0 = p * PANEL;
        let width = PANEL.min(self.n - c0);
        (c0, width, &self.data[c0 * self.k..(c0 + width) * self.k])
    }
}

/// `c[m×n] = a[m×k] · b (+ bias)` with `b` given as [`Panels`]; `c` is overwritten. Threads take
/// contiguous runs of panels (output columns), so each reads only its share of `b`.
pub fn matmul_panels(a: &[f32], b: &Panels, bias: Option<&[f32]>, m: usize, c: &mut [f32]) {
    let (k, n) = (b.k, b.n);
    debug_assert_eq!(a.len(), m * k);
    debug_assert_eq!(c.len(), m * n);
    let out = SharedOut::new(c);
    parallel_parts(b.count(), m * k * n, |panels| {
        for p in panels {
            let (c0, width, panel) = b.panel(p);
            // The bias goes in just before the GEMM adds to it, while these columns are in cache.
            if let Some(bias) = bias {
                for r in 0..m {
                    // SAFETY: row r's columns c0 .. c0 + width of the m×n c; only this thread
                    // touches panel p's columns (see below).
                    unsafe { out.write(r * n + c0, &bias[c0..c0 + width]) };
                }
            }
            // SAFETY: a is m×k row-major and panel is k×width row-major (its length is checked
            // by the slice above); dst starts at column c0 of the m×n row-major c and spans
            // width ≤ n − c0 columns of every row. `parallel_parts` hands each panel to one
            // thread only, so no two threads touch the same element, and c outlives the call.
            unsafe {
                gemm::gemm(
                    m,
                    width,
                    k,
                    out.at(c0),
                    1,
                    n as isize,
                    bias.is_some(),
                    a.as_ptr(),
                    1,
                    k as isize,
                    panel.as_ptr(),
                    1,
                    width as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], bias: Option<&[f32]>, layout: BLayout, m: usize, k: usize, n: usize) -> Vec<f64> {
        let mut c = vec![0.0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut acc = bias.map_or(0.0, |b| f64::from(b[j]));
                for p in 0..k {
                    let bv = match layout {
                        BLayout::RowMajor => b[p * n + j],
                        BLayout::Transposed => b[j * k + p],
                    };
                    acc += f64::from(a[i * k + p]) * f64::from(bv);
                }
                c[i * n + j] = acc;
            }
        }
        c
    }

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len).map(|i| ((i * 7919 + seed * 104_729) % 2003) as f32 / 1001.0 - 1.0).collect()
    }

    #[test]
    fn panels_match_a_reference_product() {
        for &(m, k, n) in &[(33, 17, 64), (70, 33, 65), (197, 96, 200), (40, 300, 130)] {
            for layout in [BLayout::RowMajor, BLayout::Transposed] {
                for with_bias in [false, true] {
                    let (a, b, bias) = (values(m * k, 1), values(k * n, 2), values(n, 3));
                    let bias = with_bias.then_some(&bias[..]);
                    let mut c = vec![f32::NAN; m * n];
                    matmul_panels(&a, &Panels::new(&b, layout, k, n), bias, m, &mut c);
                    let want = naive(&a, &b, bias, layout, m, k, n);
                    for (i, (&g, &w)) in c.iter().zip(&want).enumerate() {
                        assert!(
                            (f64::from(g) - w).abs() < 1e-4 * (1.0 + w.abs()),
                            "{m}x{k}x{n} {layout:?} [{i}]: {g} vs {w}"
                        );
                    }
                }
            }
        }
    }
}
