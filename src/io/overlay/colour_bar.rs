//! The labelled colour bar appended on the right of an overlay, labelled in the 5×7 bitmap font
//! of [`super::canvas`].

use super::canvas::{text_width, Canvas, GLYPH_H};
use super::{colormap_jet, RgbImage};

const WHITE: u8 = 255;
const TEXT: [u8; 3] = [0, 0, 0];

/// A short label: 4 significant digits, trailing zeros dropped; exponent form for
/// magnitudes below 0.001 or from 10,000 on.
pub(super) fn label(v: f32) -> String {
    let a = v.abs();
    if v == 0.0 {
        return "0".into();
    }
    if !(1e-3..1e4).contains(&a) {
        return format!("{v:.1e}");
    }
    let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { &s };
    if s == "-0" {
        "0".into()
    } else {
        s.into()
    }
}

/// Pixel sizes of the strip for an image of `width` × `height`.
pub(super) struct Layout {
    pub scale: usize,
    pub gap: usize,
    pub bar: usize,
    pub labels: [String; 3],
    pub label_w: usize,
}

impl Layout {
    pub(super) fn new(width: usize, height: usize, range: (f32, f32)) -> Layout {
        let scale = (height / 256).max(1);
        let bar = ((width as f32 * 0.04).round() as usize).max(24);
        let labels = [label(range.1), label((range.0 + range.1) / 2.0), label(range.0)];
        let label_w = labels.iter().map(|l| text_width(l, scale)).max().unwrap_or(0);
        Layout { scale, gap: (bar / 3).max(4), bar, labels, label_w }
    }

    /// Columns added to the right of the image.
    pub(super) fn width(&self) -> usize {
        3 * self.gap + self.bar + self.label_w
    }
}

/// `img` with the colour bar strip for `range` appended on its right.
pub(super) fn append(img: &RgbImage, range: (f32, f32)) -> RgbImage {
    let (w, h) = (img.width as usize, img.height as usize);
    let layout = Layout::new(w, h, range);
    let out_w = w + layout.width();
    let mut data = vec![WHITE; out_w * h * 3];
    for (dst, src) in data.chunks_exact_mut(out_w * 3).zip(img.data.chunks_exact(w * 3)) {
        dst[..w * 3].copy_from_slice(src);
    }
    let bar_x = w + layout.gap;
    for y in 0..h {
        let t = if h > 1 { 1.0 - y as f32 / (h - 1) as f32 } else { 0.5 };
        let c = colormap_jet(t);
        for x in bar_x..bar_x + layout.bar {
            data[(y * out_w + x) * 3..][..3].copy_from_slice(&c);
        }
    }
    let mut canvas = Canvas { data: &mut data, width: out_w, height: h };
    draw_labels(&mut canvas, &layout, bar_x + layout.bar + layout.gap);
    RgbImage { width: out_w as u32, height: img.height, data, alpha: None }
}

/// Top, middle and bottom labels, leaving out the middle (then the bottom) when they would
/// overlap on a short image.
fn draw_labels(canvas: &mut Canvas, layout: &Layout, x: usize) {
    let (h, text_h) = (canvas.height, GLYPH_H * layout.scale);
    let [top, mid, bottom] = &layout.labels;
    if h >= text_h {
        canvas.text(x, 0, layout.scale, top, TEXT);
    }
    if h >= 2 * text_h + layout.scale {
        canvas.text(x, h - text_h, layout.scale, bottom, TEXT);
    }
    if h >= 3 * text_h + 2 * layout.scale {
        canvas.text(x, (h - text_h) / 2, layout.scale, mid, TEXT);
    }
}
