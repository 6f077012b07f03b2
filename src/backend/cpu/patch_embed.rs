//! CPU twin of `shaders/patch_embed.wgsl`: im2col, then the GEMM against the flattened weight.

use crate::backend::check::PatchDims;

/// Gathers each p×p patch of a `[C, H, W]` image into one row of `cols`
/// (`[grid_h·grid_w, C·p·p]`, patch rows in (c, y, x) order, the conv weight's order).
pub fn im2col(image: &[f32], d: PatchDims, cols: &mut [f32]) {
    let PatchDims { channels, height, width, patch: p, grid_w, .. } = d;
    let row_len = channels * p * p;
    for (g, row) in cols.chunks_exact_mut(row_len).enumerate() {
        let (gy, gx) = (g / grid_w, g % grid_w);
        for c in 0..channels {
            for y in 0..p {
                let src = (c * height + gy * p + y) * width + gx * p;
                let dst = (c * p + y) * p;
                row[dst..dst + p].copy_from_slice(&image[src..src + p]);
            }
        }
    }
}
