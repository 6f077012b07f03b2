//! The CPU backend's tensor: shared f32 data, its shape and dtype, and the panel copies of it a
//! large product keeps when it is a weight (f32, and bf16-rounded under `--precision bf16`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use super::{bf16, matmul, pool};
use crate::backend::{BLayout, DType, TensorInfo};

/// A tensor in host memory. f16 uploads are widened to f32 on upload (exactly), and keep
/// [`DType::F16`] as their dtype so both backends accept and refuse the same operands.
#[derive(Debug, Clone)]
pub struct CpuTensor {
    data: Arc<Vec<f32>>,
    pub(super) shape: Vec<usize>,
    dtype: DType,
    /// The tensor as a matmul `b` operand in panel form, shared by its clones.
    panels: Arc<PanelCache>,
}

/// [`matmul::Panels`] of one tensor, for each layout it was multiplied in.
#[derive(Default)]
struct PanelCache {
    /// Whether the tensor was a large product's `b` before.
    used: AtomicBool,
    row_major: OnceLock<matmul::Panels>,
    transposed: OnceLock<matmul::Panels>,
    /// The tensor rounded to bf16, in the panels [`super::Precision::Bf16`] products take here: the
    /// AVX512-BF16 kernel's where it pays, else f32 panels of the rounded values.
    bf16_row_major: OnceLock<Bf16Operand>,
    bf16_transposed: OnceLock<Bf16Operand>,
}

/// A weight rounded to bf16, laid out for the bf16 product this CPU runs.
pub(super) enum Bf16Operand {
    /// For the AVX512-BF16 kernel.
    #[cfg(target_arch = "x86_64")]
    Kernel(bf16::Bf16Panels),
    /// For the f32 GEMM.
    Rounded(matmul::Panels),
}

impl std::fmt::Debug for PanelCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PanelCache")
            .field("row_major", &self.row_major.get().is_some())
            .field("transposed", &self.transposed.get().is_some())
            .finish()
    }
}

impl CpuTensor {
    /// The elements, row-major.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    pub(super) fn new(data: Vec<f32>, shape: Vec<usize>) -> Self {
        Self::with_dtype(data, shape, DType::F32)
    }

    pub(super) fn with_dtype(data: Vec<f32>, shape: Vec<usize>, dtype: DType) -> Self {
        CpuTensor { data: Arc::new(data), shape, dtype, panels: Arc::default() }
    }

    /// Whether an f32 panel copy was kept (for tests).
    #[cfg(test)]
    pub(super) fn has_panels(&self) -> bool {
        self.panels.row_major.get().is_some() || self.panels.transposed.get().is_some()
    }

    /// The same data under another shape (no copy; panel copies are not shared, since they
    /// depend on the shape).
    pub(super) fn reshaped(&self, shape: &[usize]) -> Self {
        CpuTensor { data: self.data.clone(), shape: shape.to_vec(), dtype: self.dtype, panels: Arc::default() }
    }

    /// This tensor, a `[k, n]` matrix stored in `layout`, as [`matmul::Panels`]: `None` the
    /// first time, built the second and kept. Weights are multiplied again and again and repay
    /// the copy many times over; a one-off `b` (an activation, a text tower run once) does not.
    pub(super) fn panels(&self, layout: BLayout, k: usize, n: usize) -> Option<&matmul::Panels> {
        let cell = match layout {
            BLayout::RowMajor => &self.panels.row_major,
            BLayout::Transposed => &self.panels.transposed,
        };
        if cell.get().is_none() && !self.panels.used.swap(true, Ordering::Relaxed) {
            return None;
        }
        Some(cell.get_or_init(|| matmul::Panels::new(self.data(), layout, k, n)))
    }

    /// This tensor, a `[k, n]` matrix stored in `layout`, rounded to bf16 in panels (built on
    /// first use and kept: in bf16 mode every product with it is rounded the same way).
    pub(super) fn bf16_operand(&self, layout: BLayout, k: usize, n: usize) -> &Bf16Operand {
        let cell = match layout {
            BLayout::RowMajor => &self.panels.bf16_row_major,
            BLayout::Transposed => &self.panels.bf16_transposed,
        };
        cell.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            if bf16::dpbf16_pays() {
                return Bf16Operand::Kernel(bf16::Bf16Panels::new(self.data(), layout, k, n));
            }
            Bf16Operand::Rounded(bf16::rounded_panels(self.data(), layout, k, n))
        })
    }
}

impl Drop for CpuTensor {
    fn drop(&mut self) {
        // The last holder of the buffer lends it to the next op's output.
        if let Some(data) = Arc::get_mut(&mut self.data) {
            pool::give_back(std::mem::take(data));
        }
    }
}

impl TensorInfo for CpuTensor {
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn dtype(&self) -> DType {
        self.dtype
    }
}
