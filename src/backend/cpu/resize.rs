//! CPU twin of `shaders/resize.wgsl`: bilinear resize with PyTorch's `align_corners=False`
//! source-index rule, in f32 as PyTorch computes it for f32 tensors.

/// Source coordinate, lower index, upper index and upper weight for output index `dst`.
pub fn source_index(dst: usize, scale: f32, in_size: usize) -> (usize, usize, f32) {
    let real = (scale * (dst as f32 + 0.5) - 0.5).max(0.0);
    let i0 = (real as usize).min(in_size - 1);
    let i1 = if i0 + 1 < in_size { i0 + 1 } else { i0 };
    let lambda = (real - i0 as f32).clamp(0.0, 1.0);
    (i0, i1, lambda)
}

/// Resizes each `[h, w]` plane of `x` (`[C, h, w]`) to `[oh, ow]`.
pub fn resize_bilinear(x: &[f32], c: usize, h: usize, w: usize, oh: usize, ow: usize, out: &mut [f32]) {
    let (sh, sw) = (h as f32 / oh as f32, w as f32 / ow as f32);
    let cols: Vec<(usize, usize, f32)> = (0..ow).map(|ox| source_index(ox, sw, w)).collect();
    for ch in 0..c {
        let plane = &x[ch * h * w..(ch + 1) * h * w];
        for oy in 0..oh {
            let (y0, y1, ly) = source_index(oy, sh, h);
            let row = &mut out[(ch * oh + oy) * ow..(ch * oh + oy + 1) * ow];
            for (o, &(x0, x1, lx)) in row.iter_mut().zip(&cols) {
                let top = (1.0 - lx) * plane[y0 * w + x0] + lx * plane[y0 * w + x1];
                let bottom = (1.0 - lx) * plane[y1 * w + x0] + lx * plane[y1 * w + x1];
                *o = (1.0 - ly) * top + ly * bottom;
            }
        }
    }
}
