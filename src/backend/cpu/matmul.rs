//! CPU twin of `shaders/matmul.wgsl`: f32 GEMM through the `gemm` crate (AVX2/AVX-512/NEON
//! kernels, rayon threads natively), with a transposed-weight form expressed as strides.

use super::par::gemm_parallelism;
use crate::backend::BLayout;

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
    let read_dst = match bias {
        Some(bias) => {
            for row in c.chunks_exact_mut(n) {
                row.copy_from_slice(bias);
            }
            true
        }
        None => false,
    };
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
