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
/// long) unless it is the plane's own row; `cols` (`p.dw` long) is scratch.
pub fn row<'a>(p: &Plane<'a>, hx: usize, vx: usize, y: usize, line: &'a mut [u8], cols: &mut [u16]) -> &'a [u8] {
    let (iy, phase) = (y / vx, y % vx);
    match (hx, vx) {
        (1, 1) => return p.row(iy),
        (2, 1) if p.dw > 2 => h2v1(p.row(iy), cols, line),
        (1, 2) => h1v2(p.row(iy), p.row(neighbour(iy, phase, p.dh)), phase, line),
        (2, 2) if p.dw > 2 => h2v2(p.row(iy), p.row(neighbour(iy, phase, p.dh)), cols, line),
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
fn h2v1(src: &[u8], cols: &mut [u16], out: &mut [u8]) {
    for (c, &s) in cols.iter_mut().zip(src) {
        *c = u16::from(s);
    }
    triangle(cols, (1, 2, 2), out);
}

/// A 2× horizontal triangle filter over column values `c` (`n` of them, n > 2): output `2i` is
/// `(3 c(i) + c(i − 1) + bias.0) >> shift` and `2i + 1` is `(3 c(i) + c(i + 1) + bias.1) >> shift`,
/// the missing neighbour at each end being the sample itself. Written as zipped slices so that
/// it vectorises.
fn triangle(c: &[u16], (left, right, shift): (u16, u16, u32), out: &mut [u8]) {
    let n = c.len();
    out[0] = ((c[0] * 4 + left) >> shift) as u8;
    out[1] = ((c[0] * 3 + c[1] + right) >> shift) as u8;
    let neighbours = c.iter().zip(&c[1..]).zip(&c[2..]);
    for (o, ((&prev, &this), &next)) in out[2..2 * n - 2].chunks_exact_mut(2).zip(neighbours) {
        let this = this * 3;
        o[0] = ((this + prev + left) >> shift) as u8;
        o[1] = ((this + next + right) >> shift) as u8;
    }
    out[2 * n - 2] = ((c[n - 1] * 3 + c[n - 2] + left) >> shift) as u8;
    out[2 * n - 1] = ((c[n - 1] * 4 + right) >> shift) as u8;
}

/// `h1v2_fancy_upsample`: ¾ nearer + ¼ further row, bias 1 above, 2 below.
fn h1v2(near: &[u8], far: &[u8], phase: usize, out: &mut [u8]) {
    let bias = if phase == 0 { 1 } else { 2 };
    for ((o, &a), &b) in out.iter_mut().zip(near).zip(far) {
        *o = ((i32::from(a) * 3 + i32::from(b) + bias) >> 2) as u8;
    }
}

/// `h2v2_fancy_upsample`: 9/16, 3/16, 3/16, 1/16 weights, biases 8 and 7.
fn h2v2(near: &[u8], far: &[u8], cols: &mut [u16], out: &mut [u8]) {
    for ((c, &a), &b) in cols.iter_mut().zip(near).zip(far) {
        *c = u16::from(a) * 3 + u16::from(b);
    }
    triangle(cols, (8, 7, 4), out);
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
                assert!(
                    row(&p, hx, vx, y, &mut line, &mut [0; 5])[..5 * hx - 1].iter().all(|&v| v == 100),
                    "{hx}x{vx}"
                );
            }
        }
        let ramp = [0u8, 200, 0, 0, 0, 0, 0, 0];
        let narrow = Plane { data: &ramp, stride: 8, dw: 2, dh: 1 };
        assert_eq!(
            row(&narrow, 2, 1, 0, &mut [0; 4], &mut [0; 2]),
            [0, 0, 200, 200],
            "2 samples wide: no triangle filter"
        );
        let wide = Plane { data: &ramp, stride: 8, dw: 3, dh: 1 };
        assert_eq!(row(&wide, 2, 1, 0, &mut [0; 6], &mut [0; 3]), [0, 50, 150, 150, 50, 0]);
    }
}
