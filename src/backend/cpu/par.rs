//! Threading helpers: rayon natively, plain loops on wasm (no threads in the browser build).

use std::marker::PhantomData;
use std::ops::Range;

/// Multiply-adds below which a job stays on one thread.
#[cfg(not(target_arch = "wasm32"))]
const PARALLEL_WORK: usize = 1 << 16;

/// Parallelism for one GEMM of `work` multiply-adds: threads only when it pays for them.
pub fn gemm_parallelism(work: usize) -> gemm::Parallelism {
    #[cfg(not(target_arch = "wasm32"))]
    {
        if work >= PARALLEL_WORK {
            return gemm::Parallelism::Rayon(0);
        }
    }
    let _ = work;
    gemm::Parallelism::None
}

/// Worker threads ops may use (1 on wasm).
pub fn threads() -> usize {
    #[cfg(not(target_arch = "wasm32"))]
    return rayon::current_num_threads();
    #[cfg(target_arch = "wasm32")]
    1
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

/// Elements below which an elementwise op stays on one thread.
#[cfg(not(target_arch = "wasm32"))]
const PARALLEL_ELEMENTS: usize = 1 << 15;

/// Runs `f(x_part, out_part)` over matching contiguous parts of `x` and `out` (one per thread
/// when they are long enough), in parallel natively.
pub fn for_each_chunk(x: &[f32], out: &mut [f32], f: impl Fn(&[f32], &mut [f32]) + Sync + Send) {
    debug_assert_eq!(x.len(), out.len());
    #[cfg(not(target_arch = "wasm32"))]
    {
        let parts = threads().min(x.len() / PARALLEL_ELEMENTS);
        if parts > 1 {
            use rayon::prelude::*;
            let len = x.len().div_ceil(parts);
            x.par_chunks(len).zip(out.par_chunks_mut(len)).for_each(|(x, out)| f(x, out));
            return;
        }
    }
    f(x, out);
}

/// Splits `0..items` into one contiguous range per thread (fewer when `work`, the job's total
/// multiply-adds, is small) and runs `f` on each, in parallel natively.
pub fn parallel_parts(items: usize, work: usize, f: impl Fn(Range<usize>) + Sync + Send) {
    #[cfg(not(target_arch = "wasm32"))]
    {
        let parts = if work >= PARALLEL_WORK { threads().min(items) } else { 1 };
        if parts > 1 {
            use rayon::prelude::*;
            (0..parts).into_par_iter().for_each(|t| f(t * items / parts..(t + 1) * items / parts));
            return;
        }
    }
    let _ = work;
    f(0..items);
}

/// The start of an output buffer that several threads write through gemm, each its own
/// disjoint set of elements (a GEMM's output columns, an attention head's columns).
#[derive(Clone, Copy)]
pub struct SharedOut<'a> {
    ptr: *mut f32,
    len: usize,
    _borrow: PhantomData<&'a mut [f32]>,
}

// SAFETY: a SharedOut only hands out raw pointers (never references) into a buffer it borrows
// mutably for 'a; writing through them is `unsafe` at each use, whose callers keep the threads'
// element sets disjoint.
unsafe impl Send for SharedOut<'_> {}
// SAFETY: as above.
unsafe impl Sync for SharedOut<'_> {}

impl<'a> SharedOut<'a> {
    /// Borrows `out` for as long as the SharedOut lives.
    pub fn new(out: &'a mut [f32]) -> Self {
        SharedOut { ptr: out.as_mut_ptr(), len: out.len(), _borrow: PhantomData }
    }

    /// Pointer to element `offset` (at most the buffer's length).
    pub fn at(&self, offset: usize) -> *mut f32 {
        debug_assert!(offset <= self.len, "offset {offset} past an output of {}", self.len);
        self.ptr.wrapping_add(offset)
    }

    /// Copies `src` to elements `offset .. offset + src.len()`.
    ///
    /// # Safety
    /// Those elements are in the buffer, and no other thread reads or writes them meanwhile.
    pub unsafe fn write(&self, offset: usize, src: &[f32]) {
        debug_assert!(
            offset + src.len() <= self.len,
            "{} elements at {offset} past an output of {}",
            src.len(),
            self.len
        );
        // SAFETY: in bounds and unshared, by the caller's contract; src is another allocation.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.add(offset), src.len()) };
    }
}
