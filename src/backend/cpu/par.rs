//! Threading helpers: rayon natively, plain loops on wasm (no threads in the browser build).

/// Parallelism for one GEMM of `work` multiply-adds: threads only when it pays for them.
pub fn gemm_parallelism(work: usize) -> gemm::Parallelism {
    #[cfg(not(target_arch = "wasm32"))]
    {
        if work >= 1 << 16 {
            return gemm::Parallelism::Rayon(0);
        }
    }
    let _ = work;
    gemm::Parallelism::None
}

/// Runs `f(row_index, row)` over `out` split into rows of `cols` elements, in parallel natively.
pub fn for_each_row(out: &mut [f32], cols: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        out.par_chunks_mut(cols).enumerate().for_each(|(i, row)| f(i, row));
    }
    #[cfg(target_arch = "wasm32")]
    out.chunks_mut(cols).enumerate().for_each(|(i, row)| f(i, row));
}
