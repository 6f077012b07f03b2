//! CPU twin of `shaders/attention.wgsl`: per (batch item, head), blocks of query rows go through
//! two GEMMs around a row softmax. A block's `[rows, T]` scores stay in L2 (the full `[T, T]`
//! matrix at T = 1370 would not); the head's keys and values are first copied out of the packed
//! `qkv` rows into contiguous `[T, d]` matrices that every block then reads.

use super::par::{parallel_parts, SharedOut};
use super::pool;
use super::softmax::softmax_in_place;
use crate::backend::check::AttentionDims;
use crate::backend::{AttentionKind, AttentionMask};

/// Query rows per block: a block's `[48, T]` scores stay in L2 up to T ≈ 5000, and with at most
/// 48 rows (8 of its 6-wide micro-tiles) gemm reads kᵀ and v in place instead of repacking them
/// for every block.
const QUERY_BLOCK: usize = 48;

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
    debug_assert_eq!(qkv.len(), batch * t * 3 * w);
    debug_assert_eq!(out.len(), batch * t * w);
    let out = SharedOut::new(out);
    parallel_parts(batch * heads, batch * heads * t * t * d, |jobs| {
        let mut scratch = Scratch::new(dims);
        for job in jobs {
            let (b, h) = (job / heads, job % heads);
            let rows = &qkv[b * t * 3 * w..(b + 1) * t * 3 * w];
            head(rows, dims, qkv_offsets(kind, w), h, mask, &mut scratch, out, b * t * w + h * d);
        }
    });
}

/// One thread's working memory, reused across the heads it computes.
struct Scratch {
    /// The head's keys and values, `[T, d]` each, contiguous.
    k: Vec<f32>,
    v: Vec<f32>,
    /// One block's `[rows, T]` scores.
    scores: Vec<f32>,
    /// Query rows per block.
    block: usize,
}

impl Scratch {
    fn new(dims: AttentionDims) -> Self {
        let (t, d) = (dims.tokens, dims.head_dim);
        let block = QUERY_BLOCK.min(t);
        Scratch { k: pool::output(t * d), v: pool::output(t * d), scores: pool::output(block * t), block }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        for buf in [&mut self.k, &mut self.v, &mut self.scores] {
            pool::give_back(std::mem::take(buf));
        }
    }
}

/// One head: `rows` is the batch item's `[T, 3W]` qkv; the head's `[T, d]` result goes to `out`
/// from element `at` on, with row stride W.
#[allow(clippy::too_many_arguments)] // the head's coordinates, its scratch memory and its output
fn head(
    rows: &[f32],
    dims: AttentionDims,
    (q_off, k_off, v_off): (usize, usize, usize),
    h: usize,
    mask: AttentionMask,
    scratch: &mut Scratch,
    out: SharedOut<'_>,
    at: usize,
) {
    let AttentionDims { tokens: t, width: w, head_dim: d, .. } = dims;
    let stride = 3 * w;
    let Scratch { k, v, scores, block } = scratch;
    // kᵀ, [d, T], 16 tokens at a time so that each write fills a cache line.
    k.resize(d * t, 0.0);
    for j0 in (0..t).step_by(16) {
        let group = &rows[j0 * stride..(j0 + 16).min(t) * stride];
        for c in 0..d {
            for (jj, r) in group.chunks_exact(stride).enumerate() {
                k[c * t + j0 + jj] = r[k_off + h * d + c];
            }
        }
    }
    v.clear();
    for r in rows.chunks_exact(stride) {
        v.extend_from_slice(&r[v_off + h * d..v_off + (h + 1) * d]);
    }
    let scale = 1.0 / (d as f32).sqrt();
    for i0 in (0..t).step_by(*block) {
        let n_q = (*block).min(t - i0);
        // Keys any query of this block may see.
        let n_k = match mask {
            AttentionMask::None => t,
            AttentionMask::Causal => i0 + n_q,
        };
        let s = &mut scores[..n_q * n_k];
        let q = &rows[i0 * stride + q_off + h * d..];
        // SAFETY: q addresses n_q rows of stride 3W and d columns inside `rows` (row i0 + n_q − 1
        // ends at (i0 + n_q − 1)·3W + q_off + (h + 1)·d ≤ T·3W); k is T×d (its first n_k ≤ T
        // rows read, as kᵀ's columns); s is n_q×n_k; no aliasing.
        unsafe {
            gemm::gemm(
                n_q,
                n_k,
                d,
                s.as_mut_ptr(),
                1,
                n_k as isize,
                false,
                q.as_ptr(),
                1,
                stride as isize,
                k.as_ptr(),
                1,
                t as isize,
                0.0,
                scale,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        for (r, row) in s.chunks_exact_mut(n_k).enumerate() {
            let seen = match mask {
                AttentionMask::None => n_k,
                AttentionMask::Causal => i0 + r + 1,
            };
            softmax_in_place(&mut row[..seen]);
            row[seen..].fill(0.0);
        }
        // SAFETY: s is n_q×n_k; v is T×d (n_k ≤ T rows used); the destination is n_q rows of
        // stride W and d columns from element at + i0·W of the [B·T, W] output, which
        // `attention` hands to this (batch item, head) alone.
        unsafe {
            gemm::gemm(
                n_q,
                d,
                n_k,
                out.at(at + i0 * w),
                1,
                w as isize,
                false,
                s.as_ptr(),
                1,
                n_k as isize,
                v.as_ptr(),
                1,
                d as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
    }
}
