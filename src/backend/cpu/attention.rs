//! CPU twin of `shaders/attention.wgsl`: per (batch item, head) two GEMMs around a row softmax.
//! Unlike the GPU kernel it does hold one `[T, T]` score matrix per head in flight: CPU memory
//! has no binding limit, and the GEMM is what makes this path fast.

use super::par::gemm_parallelism;
use super::softmax::softmax_in_place;
use crate::backend::check::AttentionDims;
use crate::backend::{AttentionKind, AttentionMask};

/// Column offsets of the q, k and v blocks inside a packed `[q | k | v]` row of width 3W.
pub fn qkv_offsets(kind: AttentionKind, width: usize) -> (usize, usize, usize) {
    match kind {
        AttentionKind::QueryKey => (0, width, 2 * width),
        AttentionKind::ValueValue => (2 * width, 2 * width, 2 * width),
    }
}

/// Multi-head attention of packed `qkv` (`[B, T, 3W]`) into `out` (`[B, T, W]`).
pub fn attention(qkv: &[f32], dims: AttentionDims, kind: AttentionKind, mask: AttentionMask, out: &mut [f32]) {
    let AttentionDims { batch, tokens: t, width: w, heads, head_dim: d } = dims;
    let (q_off, k_off, v_off) = qkv_offsets(kind, w);
    let scale = 1.0 / (d as f32).sqrt();
    let head = |job: usize| -> Vec<f32> {
        let (b, h) = (job / heads, job % heads);
        let base = b * t * 3 * w + h * d;
        let (q, k, v) = (&qkv[base + q_off..], &qkv[base + k_off..], &qkv[base + v_off..]);
        let mut scores = vec![0.0f32; t * t];
        let rs = (3 * w) as isize;
        // SAFETY: q, k, v address t rows of stride 3W and d columns inside qkv (base + offset +
        // (t−1)·3W + d ≤ qkv.len()); scores is t×t; no aliasing.
        unsafe {
            gemm::gemm(
                t,
                t,
                d,
                scores.as_mut_ptr(),
                1,
                t as isize,
                false,
                q.as_ptr(),
                1,
                rs,
                k.as_ptr(),
                rs,
                1,
                0.0,
                scale,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        for (i, row) in scores.chunks_exact_mut(t).enumerate() {
            if mask == AttentionMask::Causal {
                row[i + 1..].fill(f32::NEG_INFINITY);
            }
            softmax_in_place(row);
        }
        let mut o = vec![0.0f32; t * d];
        // SAFETY: as above; o is t×d.
        unsafe {
            gemm::gemm(
                t,
                d,
                t,
                o.as_mut_ptr(),
                1,
                d as isize,
                false,
                scores.as_ptr(),
                1,
                t as isize,
                v.as_ptr(),
                1,
                rs,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        o
    };
    let jobs = batch * heads;
    let per_head: Vec<Vec<f32>> = run_jobs(jobs, t * t * d, head);
    for (job, o) in per_head.iter().enumerate() {
        let (b, h) = (job / heads, job % heads);
        for (i, row) in o.chunks_exact(d).enumerate() {
            let at = (b * t + i) * w + h * d;
            out[at..at + d].copy_from_slice(row);
        }
    }
}

/// Runs `jobs` independent jobs of about `work` multiply-adds each, in parallel natively.
fn run_jobs<T: Send>(jobs: usize, work: usize, f: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        if !matches!(gemm_parallelism(work * jobs), gemm::Parallelism::None) {
            use rayon::prelude::*;
            return (0..jobs).into_par_iter().map(f).collect();
        }
    }
    let _ = work;
    (0..jobs).map(f).collect()
}
