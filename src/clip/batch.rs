//! Several images' token matrices as one batch `[B, T, W]`, so a pass multiplies every weight
//! once for all of them; and the rows of one item read back out of it.
//!
//! A batch of one is kept as the plain `[T, W]` matrix, so the single-image pass records
//! exactly the ops it always has.

use crate::backend::{Backend, BackendError, TensorInfo};

/// Stacks `items` (each `[T, W]`, one shape) into `[B, T, W]`; one item comes back as it is.
pub fn stack<B: Backend>(be: &B, items: &[B::Tensor]) -> Result<B::Tensor, BackendError> {
    let (first, rest) = items.split_first().ok_or_else(|| BackendError::InvalidArgument {
        op: "stack",
        message: "a batch needs at least one image".into(),
    })?;
    if rest.is_empty() {
        return Ok(first.clone());
    }
    let shape = first.shape().to_vec();
    if let Some(odd) = rest.iter().find(|t| t.shape() != shape.as_slice()) {
        return Err(BackendError::ShapeMismatch {
            op: "stack",
            operand: "items",
            expected: format!("{shape:?} (the first item's shape)"),
            got: odd.shape().to_vec(),
        });
    }
    let rows = concat_all(be, items)?;
    be.reshape(&rows, &[items.len(), shape[0], shape[1]])
}

/// The rows of every matrix in order, joined pairwise (each row is copied about log₂ B times,
/// not B times as a left-to-right chain would).
fn concat_all<B: Backend>(be: &B, items: &[B::Tensor]) -> Result<B::Tensor, BackendError> {
    match items {
        [one] => Ok(one.clone()),
        _ => {
            let (left, right) = items.split_at(items.len() / 2);
            be.concat_rows(&concat_all(be, left)?, &concat_all(be, right)?)
        }
    }
}

/// Number of items in `x`: `B` for `[B, T, W]`, 1 for a plain `[T, W]`.
pub fn items(x: &impl TensorInfo) -> usize {
    match *x.shape() {
        [b, _, _] => b,
        _ => 1,
    }
}

/// Rows `start .. start + count` of item `b` of `x` (`[T, W]` for a batch of one, else
/// `[B, T, W]`), as `[count, W]`.
pub fn item_rows<B: Backend>(
    be: &B,
    x: &B::Tensor,
    b: usize,
    start: usize,
    count: usize,
) -> Result<B::Tensor, BackendError> {
    match *x.shape() {
        [n, t, w] => {
            if b >= n || start + count > t {
                return Err(BackendError::InvalidArgument {
                    op: "item_rows",
                    message: format!("rows {start}..{} of item {b} are outside [{n}, {t}, {w}]", start + count),
                });
            }
            be.slice_rows(&be.reshape(x, &[n * t, w])?, b * t + start, count)
        }
        _ => be.slice_rows(x, start, count),
    }
}

/// The class token (row 0) of every item: `[1, W]` for a batch of one, else `[B, 1, W]`.
pub fn class_rows<B: Backend>(be: &B, x: &B::Tensor) -> Result<B::Tensor, BackendError> {
    match *x.shape() {
        [n, _, w] => {
            let rows: Vec<B::Tensor> = (0..n).map(|b| item_rows(be, x, b, 0, 1)).collect::<Result<_, _>>()?;
            be.reshape(&concat_all(be, &rows)?, &[n, 1, w])
        }
        _ => be.slice_rows(x, 0, 1),
    }
}
