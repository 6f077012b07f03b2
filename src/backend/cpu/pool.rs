//! Reuse of large tensor buffers. Every op allocates its output, at CLIP shapes megabytes each,
//! and the allocator returns such blocks to the OS when they are freed: the next op's output
//! then costs a page fault and a kernel page-zeroing per 4 KiB, ~10% of a ViT-L/14 image
//! encoding at 518 px. Tensors give their buffer back here when the last one sharing it is
//! dropped, and ops take their outputs from here.

use std::sync::Mutex;

/// Buffers shorter than this (256 KiB) are left to the allocator, which keeps them itself.
const MIN_LEN: usize = 1 << 16;
/// Most buffers kept.
const MAX_BUFFERS: usize = 16;
/// Most elements kept in all (256 MiB of f32).
const MAX_ELEMENTS: usize = 1 << 26;

/// The kept buffers, oldest first.
static FREE: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

/// A buffer of `len` elements for an op output that the op then overwrites entirely: a kept
/// buffer (holding the values of an earlier tensor) when one fits, else zeros.
pub fn output(len: usize) -> Vec<f32> {
    if len >= MIN_LEN {
        if let Ok(mut free) = FREE.lock() {
            // The smallest kept buffer that holds len elements without wasting over half of it.
            let fit = (0..free.len())
                .filter(|&i| (len..=2 * len).contains(&free[i].capacity()))
                .min_by_key(|&i| free[i].capacity());
            if let Some(i) = fit {
                let mut v = free.remove(i);
                v.resize(len, 0.0);
                return v;
            }
        }
    }
    vec![0.0; len]
}

/// Keeps `v` for a later [`output`] if it is large enough, dropping the oldest kept buffers
/// beyond the limits.
pub fn give_back(v: Vec<f32>) {
    if !(MIN_LEN..=MAX_ELEMENTS).contains(&v.capacity()) {
        return;
    }
    if let Ok(mut free) = FREE.lock() {
        free.push(v);
        while free.len() > MAX_BUFFERS || free.iter().map(Vec::capacity).sum::<usize>() > MAX_ELEMENTS {
            free.remove(0);
        }
    }
}
