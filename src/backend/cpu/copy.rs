//! CPU twins of `shaders/copy.wgsl`: row ranges of row-major matrices.

/// Rows `start .. start + count` of a row-major matrix with `cols` columns.
pub fn slice_rows(x: &[f32], cols: usize, start: usize, count: usize) -> Vec<f32> {
    x[start * cols..(start + count) * cols].to_vec()
}

/// The rows of `a` followed by the rows of `b` (same column count).
pub fn concat_rows(a: &[f32], b: &[f32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    out.extend_from_slice(a);
    out.extend_from_slice(b);
    out
}
