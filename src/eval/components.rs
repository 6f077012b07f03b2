//! Connected components of a binary mask, 8-connected: `skimage.measure.label`'s default for
//! 2-D input (`connectivity = ndim`), which AnomalyCLIP's `cal_pro_score` uses, and the MVTec AD
//! evaluation's `scipy.ndimage.label` with a 3×3 structure of ones.

use super::MetricError;

/// The components of one mask.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Components {
    labels: Vec<u32>,
    sizes: Vec<u32>,
}

impl Components {
    /// Per pixel (row-major), 0 for background, else the component's number, 1-based in the
    /// order of each component's first pixel in raster order (as scikit-image numbers them).
    pub fn labels(&self) -> &[u32] {
        &self.labels
    }

    /// The size in pixels of component `k + 1`, at index `k`.
    pub fn sizes(&self) -> &[u32] {
        &self.sizes
    }

    /// How many components there are.
    pub fn count(&self) -> usize {
        self.sizes.len()
    }
}

/// Labels the 8-connected components of `mask`.
///
/// # Shapes
/// `mask`: `[height, width]` row-major, `true` = anomalous.
///
/// # Errors
/// [`MetricError::LengthMismatch`] if `mask.len() != height * width`;
/// [`MetricError::ImageTooLarge`] past `u32::MAX` pixels.
pub fn label_components(mask: &[bool], height: usize, width: usize) -> Result<Components, MetricError> {
    let n = checked_pixels(height, width)?;
    if mask.len() != n {
        return Err(MetricError::LengthMismatch { what: "mask", expected: n, got: mask.len() });
    }
    let mut labels = vec![0u32; n];
    let mut sizes: Vec<u32> = Vec::new();
    let mut stack: Vec<usize> = Vec::new();
    for start in 0..n {
        if !mask[start] || labels[start] != 0 {
            continue;
        }
        // At most n ≤ u32::MAX components, so the id fits.
        let id = sizes.len() as u32 + 1;
        labels[start] = id;
        stack.push(start);
        let mut size = 0u32;
        while let Some(p) = stack.pop() {
            size += 1;
            let (y, x) = (p / width, p % width);
            for ny in y.saturating_sub(1)..=(y + 1).min(height - 1) {
                for nx in x.saturating_sub(1)..=(x + 1).min(width - 1) {
                    let q = ny * width + nx;
                    if mask[q] && labels[q] == 0 {
                        labels[q] = id;
                        stack.push(q);
                    }
                }
            }
        }
        sizes.push(size);
    }
    Ok(Components { labels, sizes })
}

/// `height * width`, checked to fit a u32 count.
pub(crate) fn checked_pixels(height: usize, width: usize) -> Result<usize, MetricError> {
    let limit = u64::from(u32::MAX);
    match height.checked_mul(width) {
        Some(n) if n as u64 <= limit => Ok(n),
        _ => Err(MetricError::ImageTooLarge { height, width, limit }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(rows: &[&str]) -> (Vec<bool>, usize, usize) {
        let m = rows.iter().flat_map(|r| r.bytes().map(|b| b == b'#')).collect();
        (m, rows.len(), rows[0].len())
    }

    #[test]
    fn diagonal_neighbours_join() {
        let (m, h, w) = mask(&["#..#", ".#..", "...#", "#..#"]);
        let c = label_components(&m, h, w).unwrap();
        assert_eq!(c.sizes(), &[2, 1, 2, 1]);
        assert_eq!(c.labels()[5], 1);
        assert_eq!(c.labels()[12], 4);
    }

    #[test]
    fn empty_and_wrong_length() {
        let c = label_components(&[], 0, 5).unwrap();
        assert_eq!(c.count(), 0);
        assert!(matches!(label_components(&[true; 5], 2, 3), Err(MetricError::LengthMismatch { .. })));
    }
}
