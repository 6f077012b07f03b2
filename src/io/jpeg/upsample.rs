//! Chroma upsampling as libjpeg's `jdsample.c` does it by default (`do_fancy_upsampling`):
//! triangle filters for 2× horizontally (`h2v1_fancy_upsample`), 2× vertically
//! (`h1v2_fancy_upsample`) and both (`h2v2_fancy_upsample`), with their exact rounding biases,
//! edge rows replicated as libjpeg's main controller does; plain replication for other integer
//! ratios (`int_upsample`), and for 2× ratios of planes at most 2 samples wide (libjpeg's rule).

/// One component plane after the IDCT: `stride`-byte rows, the first `dw × dh` samples real.
pub struct Plane<'a> {
    /// Samples, row-major.
    pub data: &'a [u8],
    /// Bytes per row.
    pub stride: usize,
    /// Real samples per row.
    pub dw: usize,
    /// Real rows.
    pub dh: usize,
}

impl<'a> Plane<'a> {
    fn row(&self, y: usize) -> &'a [u8] {
        let y = y.min(self.dh - 1);
        &self.data[y * self.stride..y * self.stride + self.dw]
    }
}

/// Output row `y` of `p` upsampled by `hx × vx` (integers: the caller refuses other ratios, as
/// libjpeg does): at least the image's width of samples, computed into `line` (`p.dw · hx`
/// long) unless it is the plane's own row.
pub fn row<'a>(p: &Plane<'a>, hx: usize, vx: usize, y: usize, line: &'a mut [u8]) -> &'a [u8] {
    let (iy, phase) = (y / vx, y % vx);
    match (hx, vx) {
        (1, 1) => return p.row(iy),
        (2, 1) if p.dw > 2 => h2v1(p.row(iy), line),
        (1, 2) => h1v2(p.row(iy), p.row(neighbour(iy, phase, p.dh)), phase, line),
        (2, 2) if p.dw > 2 => h2v2(p.row(iy), p.row(neighbour(iy, phase, p.dh)), line),
        _ => replicate(p.row(iy), hx, line),
    }
    line
}

/// The next-nearest input row of output phase `phase` (0: the row above, 1: below), clamped to
/// the real rows (libjpeg duplicates the first and last rows as context).
fn neighbour(iy: usize, phase: usize, dh: usize) -> usize {
    if phase == 0 {
        iy.saturating_sub(1)
    } else {
        (iy + 1).min(dh - 1)
    }
}

fn replicate(src: &[u8], hx: usize, out: &mut [u8]) {
    for (o, &s) in out.chunks_exact_mut(hx).zip(src) {
        o.fill(s);
    }
}

/// `h2v1_fancy_upsample`: ¾ nearer + ¼ further sample, biases 1 and 2.
fn h2v1(src: &[u8], out: &mut [u8]) {
    let n = src.len();
    let v = |i: usize| i32::from(src[i]);
    out[0] = src[0];
    out[1] = ((v(0) * 3 + v(1) + 2) >> 2) as u8;
    for (w, o) in src.windows(3).zip(out[2..2 * n - 2].chunks_exact_mut(2)) {
        let c = i32::from(w[1]) * 3;
        o[0] = ((c + i32::from(w[0]) + 1) >> 2) as u8;
        o[1] = ((c + i32::from(w[2]) + 2) >> 2) as u8;
    }
    out[2 * n - 2] = ((v(n - 1) * 3 + v(n - 2) + 1) >> 2) as u8;
    out[2 * n - 1] = src[n - 1];
}

/// `h1v2_fancy_upsample`: ¾ nearer + ¼ further row, bias 1 above, 2 below.
fn h1v2(near: &[u8], far: &[u8], phase: usize, out: &mut [u8]) {
    let bias = if phase == 0 { 1 } else { 2 };
    for ((o, &a), &b) in out.iter_mut().zip(near).zip(far) {
        *o = ((i32::from(a) * 3 + i32::from(b) + bias) >> 2) as u8;
    }
}

/// `h2v2_fancy_upsample`: 9/16, 3/16, 3/16, 1/16 weights, biases 8 and 7.
fn h2v2(near: &[u8], far: &[u8], out: &mut [u8]) {
    let n = near.len();
    let col = |i: usize| i32::from(near[i]) * 3 + i32::from(far[i]);
    let (first, second) = (col(0), col(1));
    out[0] = ((first * 4 + 8) >> 4) as u8;
    out[1] = ((first * 3 + second + 7) >> 4) as u8;
    // Interior samples from windows of three (no bounds checks, so the loop vectorises).
    for ((a, b), o) in near.windows(3).zip(far.windows(3)).zip(out[2..2 * n - 2].chunks_exact_mut(2)) {
        let c = |i: usize| i32::from(a[i]) * 3 + i32::from(b[i]);
        let (last, this, next) = (c(0), c(1), c(2));
        o[0] = ((this * 3 + last + 8) >> 4) as u8;
        o[1] = ((this * 3 + next + 7) >> 4) as u8;
    }
    let (last, this) = (col(n - 2), col(n - 1));
    out[2 * n - 2] = ((this * 3 + last + 8) >> 4) as u8;
    out[2 * n - 1] = ((this * 4 + 7) >> 4) as u8;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fancy_filters_keep_flat_planes_flat_and_narrow_planes_replicate() {
        let data = [100u8; 64];
        let p = Plane { data: &data, stride: 8, dw: 5, dh: 3 };
        for (hx, vx) in [(2, 1), (1, 2), (2, 2), (3, 1), (4, 4)] {
            let mut line = vec![0u8; 5 * hx];
            for y in 0..3 * vx - 1 {
                assert!(row(&p, hx, vx, y, &mut line)[..5 * hx - 1].iter().all(|&v| v == 100), "{hx}x{vx}");
            }
        }
        let ramp = [0u8, 200, 0, 0, 0, 0, 0, 0];
        let narrow = Plane { data: &ramp, stride: 8, dw: 2, dh: 1 };
        assert_eq!(row(&narrow, 2, 1, 0, &mut [0; 4]), [0, 0, 200, 200], "2 samples wide: no triangle filter");
        let wide = Plane { data: &ramp, stride: 8, dw: 3, dh: 1 };
        assert_eq!(row(&wide, 2, 1, 0, &mut [0; 6]), [0, 50, 150, 150, 50, 0]);
    }
}
