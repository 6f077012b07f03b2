//! CLIP preprocessing, bit-exact with PIL + torchvision: bicubic resize, centre crop, normalise.
//!
//! [`resize_bicubic`] is a port of Pillow's `ImagingResample` (`src/libImaging/Resample.c`) for
//! 8-bit images with the bicubic filter (a = -0.5, support 2, widened by the scale when
//! shrinking): separable, horizontal pass first (only over the rows the vertical pass reads),
//! then vertical — except that, as in Pillow 13 (python-pillow/Pillow#9549), the vertical pass
//! runs first when the height shrinks by more than twice as many pixels as the width (Pillow ≤ 12
//! always went horizontal first; the two orders can differ by a level on some pixels). Each pass
//! uses 22-bit fixed-point coefficients and rounds and clips to 8 bits; a pass whose axis keeps
//! its size is skipped, and an unchanged size is a plain copy. Images with alpha are
//! premultiplied first and un-premultiplied after, with PIL's integer formulas (this is what
//! `Image.resize` does for `RGBA` and `LA`). No `reducing_gap` (torchvision passes none).
//!
//! [`preprocess`] then follows open_clip's eval transform: torchvision `Resize(S)` (shorter side
//! to `S`, longer side `int(S * long / short)`), `CenterCrop(S)` (offsets
//! `int(round((h - S) / 2))`, Python rounding half to even), `convert("RGB")` (drop alpha),
//! `ToTensor` (`/ 255` in f32) and `Normalize` (`(x - mean) / std` in f32), giving CHW `f32`.
//! [`ResizeMode::Squash`] is AnomalyCLIP's `Resize((S, S))` without aspect ratio.
//!
//! Every output pixel of the resize depends only on its own coordinates, so `preprocess` computes
//! just the pixels the centre crop keeps: the result is identical, and a 1×16384 image does not
//! make a 224×3670016 intermediate.

use crate::io::image::RgbImage;
use crate::io::InputError;

/// The per-channel mean CLIP was trained with (OpenAI), RGB.
pub const CLIP_MEAN: [f32; 3] = [0.48145466, 0.4578275, 0.40821073];
/// The per-channel standard deviation CLIP was trained with (OpenAI), RGB.
// Spelled as open_clip spells them; the f32 values are the ones torch gets from those doubles.
#[allow(clippy::excessive_precision)]
pub const CLIP_STD: [f32; 3] = [0.26862954, 0.26130258, 0.27577711];

/// How an image is brought to the model's square input size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResizeMode {
    /// open_clip / CLIP: shorter side to S (bicubic), centre crop S×S.
    ShorterSideCrop,
    /// AnomalyCLIP: squash to S×S (bicubic), aspect ratio not kept.
    Squash,
}

/// Fixed-point precision of Pillow's 8-bit resampler: 32 bits minus 8 for the value, 2 for
/// overshoot and sign.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow's bicubic kernel, a = -0.5, with its exact order of operations.
fn bicubic_filter(x: f64) -> f64 {
    const A: f64 = -0.5;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// A Pillow resampling filter: its kernel and support (before widening when shrinking).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Filter {
    /// `Image.BICUBIC`: support 2.
    Bicubic,
    /// `Image.BILINEAR` (the triangle kernel): support 1.
    Bilinear,
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Filter::Bicubic => 2.0,
            Filter::Bilinear => 1.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        match self {
            Filter::Bicubic => bicubic_filter(x),
            Filter::Bilinear => (1.0 - x.abs()).max(0.0),
        }
    }
}

/// Resampling weights for one axis, as Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc`.
struct Coeffs {
    /// For each output index: first input index and number of taps.
    bounds: Vec<(usize, usize)>,
    /// `ksize` fixed-point weights per output index (unused tails are zero).
    weights: Vec<i32>,
    ksize: usize,
}

impl Coeffs {
    /// Weights of `filter` for the outputs `range` of a resize from `in_size` to `out_size`
    /// (both ≥ 1); `None` if the table size overflows.
    fn new(in_size: usize, out_size: usize, range: std::ops::Range<usize>, filter: Filter) -> Option<Coeffs> {
        let scale = in_size as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = filter.support() * filterscale;
        let ksize = support.ceil() as usize * 2 + 1;
        let ss = 1.0 / filterscale;
        let mut bounds = Vec::with_capacity(range.len());
        let mut weights = vec![0i32; range.len().checked_mul(ksize)?];
        let mut k = vec![0f64; ksize];
        for (xx, kk) in range.zip(weights.chunks_exact_mut(ksize)) {
            let center = (xx as f64 + 0.5) * scale;
            // C's (int) cast truncates toward zero, like `as`.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64).max(xmin as i64) as usize;
            let n = (xmax - xmin).min(ksize);
            let mut ww = 0.0;
            for (x, w) in k[..n].iter_mut().enumerate() {
                *w = filter.weight(((x + xmin) as f64 - center + 0.5) * ss);
                ww += *w;
            }
            for (w, out) in k[..n].iter().zip(kk.iter_mut()) {
                let w = if ww != 0.0 { w / ww } else { *w };
                let scaled = w * f64::from(1u32 << PRECISION_BITS);
                *out = if w < 0.0 { (-0.5 + scaled) as i32 } else { (0.5 + scaled) as i32 };
            }
            bounds.push((xmin, n));
        }
        Some(Coeffs { bounds, weights, ksize })
    }
}

/// Pillow's `clip8`: drop the fraction (arithmetic shift) and clamp to 0..=255.
#[inline(always)]
fn clip8(v: i32) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// Calls `f(index, row)` for every `row_len`-byte row of `out` (`row_len` ≥ 1): on rayon's
/// threads natively, in order on wasm. Rows are independent, so the result is the same.
#[cfg(not(target_arch = "wasm32"))]
fn for_each_row(out: &mut [u8], row_len: usize, f: impl Fn(usize, &mut [u8]) + Sync + Send) {
    use rayon::prelude::*;
    out.par_chunks_mut(row_len).with_min_len(8).enumerate().for_each(|(i, row)| f(i, row));
}

/// Calls `f(index, row)` for every `row_len`-byte row of `out` (`row_len` ≥ 1), in order.
#[cfg(target_arch = "wasm32")]
fn for_each_row(out: &mut [u8], row_len: usize, f: impl Fn(usize, &mut [u8])) {
    out.chunks_mut(row_len).enumerate().for_each(|(i, row)| f(i, row));
}

/// Horizontal pass over rows `rows` of an interleaved `C`-channel image `in_w` pixels wide.
fn resample_horizontal<const C: usize>(
    src: &[u8],
    in_w: usize,
    rows: std::ops::Range<usize>,
    coeffs: &Coeffs,
) -> Vec<u8> {
    let out_w = coeffs.bounds.len();
    let mut out = vec![0u8; rows.len() * out_w * C];
    let in_stride = in_w * C;
    let src = &src[rows.start * in_stride..rows.end * in_stride];
    for_each_row(&mut out, out_w * C, |y, out_row| {
        let src_row = &src[y * in_stride..(y + 1) * in_stride];
        for ((&(xmin, n), k), px) in
            coeffs.bounds.iter().zip(coeffs.weights.chunks_exact(coeffs.ksize)).zip(out_row.chunks_exact_mut(C))
        {
            let mut acc = [HALF; C];
            for (&kv, p) in k[..n].iter().zip(src_row[xmin * C..(xmin + n) * C].chunks_exact(C)) {
                for c in 0..C {
                    acc[c] += i32::from(p[c]) * kv;
                }
            }
            for c in 0..C {
                px[c] = clip8(acc[c]);
            }
        }
    });
    out
}

/// Vertical pass; `stride` bytes per row, `coeffs` bounds are row indices into `src`.
fn resample_vertical(src: &[u8], stride: usize, coeffs: &Coeffs) -> Vec<u8> {
    let out_h = coeffs.bounds.len();
    let mut out = vec![0u8; out_h * stride];
    for_each_row(&mut out, stride, |yy, out_row| {
        let (ymin, n) = coeffs.bounds[yy];
        let k = &coeffs.weights[yy * coeffs.ksize..][..n];
        let mut acc = vec![HALF; stride];
        for (&kv, src_row) in k.iter().zip(src[ymin * stride..(ymin + n) * stride].chunks_exact(stride)) {
            for (a, &p) in acc.iter_mut().zip(src_row) {
                *a += i32::from(p) * kv;
            }
        }
        for (o, &a) in out_row.iter_mut().zip(&acc) {
            *o = clip8(a);
        }
    });
    out
}

/// The part of a resize's output that is computed: columns `x`, rows `y` (output coordinates).
#[derive(Clone, Debug)]
struct Window {
    x: std::ops::Range<usize>,
    y: std::ops::Range<usize>,
}

/// Pillow's `ImagingResampleInner` with `filter` for an interleaved `C`-channel `in_w`×`in_h`
/// image resized to `out_w`×`out_h` (all ≥ 1), computing only the pixels in `win` (inside the
/// output, not empty): returns `win.x.len()`×`win.y.len()` pixels, or `None` if a buffer size
/// would overflow.
fn resample<const C: usize>(
    src: &[u8],
    (in_w, in_h): (usize, usize),
    (out_w, out_h): (usize, usize),
    win: &Window,
    filter: Filter,
) -> Option<Vec<u8>> {
    let need_horizontal = out_w != in_w;
    let need_vertical = out_h != in_h;
    let win_w = win.x.len();
    // Pillow 13 (python-pillow/Pillow#9549): when the height shrinks by more than twice as many
    // pixels as the width does, the vertical pass runs first, over every column.
    let (iw, ih, ow, oh) = (in_w as i64, in_h as i64, out_w as i64, out_h as i64);
    if need_horizontal && need_vertical && oh < ih && ih - oh > 2 * (iw - ow) {
        let vert = Coeffs::new(in_h, out_h, win.y.clone(), filter)?;
        let horiz = Coeffs::new(in_w, out_w, win.x.clone(), filter)?;
        win.y.len().checked_mul(in_w)?.checked_mul(C)?;
        let tmp = resample_vertical(src, in_w * C, &vert);
        return Some(resample_horizontal::<C>(&tmp, in_w, 0..win.y.len(), &horiz));
    }
    // Horizontal first (or a single pass), the horizontal pass only over the rows used later.
    let (rows, vert) = if need_vertical {
        let mut vert = Coeffs::new(in_h, out_h, win.y.clone(), filter)?;
        let first = vert.bounds.first().map_or(0, |b| b.0);
        let last = vert.bounds.last().map_or(first, |b| b.0 + b.1);
        for b in &mut vert.bounds {
            b.0 -= first;
        }
        (first..last, Some(vert))
    } else {
        (win.y.clone(), None)
    };
    rows.len().checked_mul(win_w)?.checked_mul(C)?;
    let in_stride = in_w * C;
    let tmp: std::borrow::Cow<'_, [u8]> = if need_horizontal {
        let horiz = Coeffs::new(in_w, out_w, win.x.clone(), filter)?;
        resample_horizontal::<C>(src, in_w, rows, &horiz).into()
    } else if win.x == (0..in_w) {
        src[rows.start * in_stride..rows.end * in_stride].into()
    } else {
        // Same width: just the window's columns of the rows used.
        let mut cols = Vec::with_capacity(rows.len() * win_w * C);
        for row in src[rows.start * in_stride..rows.end * in_stride].chunks_exact(in_stride) {
            cols.extend_from_slice(&row[win.x.start * C..win.x.end * C]);
        }
        cols.into()
    };
    Some(match vert {
        Some(vert) => resample_vertical(&tmp, win_w * C, &vert),
        None => tmp.into_owned(),
    })
}

/// `a * b / 255`, rounded, as Pillow's `MULDIV255`.
#[inline(always)]
fn muldiv255(a: u8, b: u8) -> u8 {
    let t = u32::from(a) * u32::from(b) + 128;
    (((t >> 8) + t) >> 8) as u8
}

/// Resizes exactly like PIL's `Image.resize((width, height), Image.BICUBIC)` on the equivalent
/// PIL image (`RGB`, or `RGBA` when `alpha` is present; an `L`/`LA` image stored with R = G = B
/// gives PIL's `L`/`LA` result replicated). The result keeps the (resized) alpha.
///
/// Never panics: a zero `width` or `height` gives an empty image of that size, an empty or
/// inconsistent source (see [`RgbImage::is_consistent`]) a black one of the requested size, and a
/// size whose buffers would not fit in memory's address range a 0×0 image.
pub fn resize_bicubic(img: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (w, h) = (width as usize, height as usize);
    if (img.width, img.height) == (width, height) && img.is_consistent() {
        return img.clone();
    }
    if w == 0 || h == 0 || img.is_empty() || !img.is_consistent() {
        let data = w.checked_mul(h).and_then(|n| n.checked_mul(3)).map(|n| vec![0; n]);
        return match data {
            Some(data) => RgbImage { width, height, data, alpha: None },
            None => RgbImage { width: 0, height: 0, data: Vec::new(), alpha: None },
        };
    }
    resize_window(img, (w, h), Window { x: 0..w, y: 0..h })
}

/// Resizes an 8-bit grey (`L`) image exactly like PIL's `Image.resize((out_w, out_h),
/// Image.BILINEAR)`: the triangle kernel widened by the scale when shrinking, 22-bit fixed-point
/// weights, each pass rounded and clipped to 8 bits (the same resampler as
/// [`resize_bicubic`], with the bilinear filter). Used for ground-truth masks, which
/// AnomalyCLIP resizes with torchvision's `Resize` on the PIL `L` image.
///
/// # Shapes
/// `src`: `[in_h, in_w]` row-major; the result `[out_h, out_w]`.
///
/// Returns `None` if a size is zero, `src.len() != in_w * in_h`, or a buffer would not fit.
pub fn resize_grey_bilinear(
    src: &[u8],
    (in_w, in_h): (usize, usize),
    (out_w, out_h): (usize, usize),
) -> Option<Vec<u8>> {
    if in_w == 0 || in_h == 0 || out_w == 0 || out_h == 0 || in_w.checked_mul(in_h) != Some(src.len()) {
        return None;
    }
    out_w.checked_mul(out_h)?;
    if (in_w, in_h) == (out_w, out_h) {
        return Some(src.to_vec());
    }
    resample::<1>(src, (in_w, in_h), (out_w, out_h), &Window { x: 0..out_w, y: 0..out_h }, Filter::Bilinear)
}

/// The `win` part of `img` resized to `out` (both sides ≥ 1; `img` consistent and not empty) as
/// its own image; 0×0 if a buffer would not fit.
fn resize_window(img: &RgbImage, out: (usize, usize), win: Window) -> RgbImage {
    let nothing = RgbImage { width: 0, height: 0, data: Vec::new(), alpha: None };
    let (win_w, win_h) = (win.x.len(), win.y.len());
    let (Ok(width), Ok(height)) = (u32::try_from(win_w), u32::try_from(win_h)) else {
        return nothing;
    };
    // Room for the 4-channel result; intermediates are checked in `resample`.
    if win_w.checked_mul(win_h).and_then(|n| n.checked_mul(4)).is_none() {
        return nothing;
    }
    let input = (img.width as usize, img.height as usize);
    let in_w = input.0;
    match &img.alpha {
        None => match resample::<3>(&img.data, input, out, &win, Filter::Bicubic) {
            Some(data) => RgbImage { width, height, data, alpha: None },
            None => nothing,
        },
        Some(alpha) => {
            // RGBA -> RGBa (premultiply), resize, RGBa -> RGBA, as Image.resize does.
            let mut premultiplied = vec![0u8; alpha.len() * 4];
            for_each_row(&mut premultiplied, in_w * 4, |y, row| {
                let rgb = &img.data[y * in_w * 3..][..in_w * 3];
                let a = &alpha[y * in_w..][..in_w];
                for ((q, p), &a) in row.chunks_exact_mut(4).zip(rgb.chunks_exact(3)).zip(a) {
                    q.copy_from_slice(&[muldiv255(p[0], a), muldiv255(p[1], a), muldiv255(p[2], a), a]);
                }
            });
            let Some(mut out) = resample::<4>(&premultiplied, input, out, &win, Filter::Bicubic) else {
                return nothing;
            };
            // Un-premultiply in place: `255 * c / a` (integer division), clipped; kept as is for
            // a = 0 and 255. The division is done as an exact multiply-shift: for numerators
            // below 2^16, floor(n / a) == (n * ceil(2^32 / a)) >> 32.
            let mut reciprocal = [0u64; 256];
            for (a, r) in reciprocal.iter_mut().enumerate().skip(1) {
                *r = (1u64 << 32).div_ceil(a as u64);
            }
            for_each_row(&mut out, win_w * 4, |_, row| {
                for p in row.chunks_exact_mut(4) {
                    let a = p[3];
                    if a != 255 && a != 0 {
                        let r = reciprocal[usize::from(a)];
                        for v in &mut p[..3] {
                            *v = ((255 * u64::from(*v) * r) >> 32).min(255) as u8;
                        }
                    }
                }
            });
            let data = out.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
            let alpha = out.chunks_exact(4).map(|p| p[3]).collect();
            RgbImage { width, height, data, alpha: Some(alpha) }
        }
    }
}

/// torchvision's `Resize(size)` output for an image `w`×`h` (sides ≥ 1): (width, height), or
/// `None` if the long side would not fit in a `u32`.
fn shorter_side_size(w: u32, h: u32, size: u32) -> Option<(u32, u32)> {
    let (short, long) = if w <= h { (w, h) } else { (h, w) };
    // Python: int(size * long / short) — float division (exact product, one rounding), truncation.
    let new_long = f64::from(size) * f64::from(long) / f64::from(short);
    if new_long >= 4_294_967_296.0 {
        return None;
    }
    let new_long = new_long as u32;
    Some(if w <= h { (size, new_long) } else { (new_long, size) })
}

/// torchvision's `CenterCrop` offset: `int(round((total - crop) / 2.0))`, Python's round half to even.
fn crop_offset(total: u32, crop: u32) -> u32 {
    let d = total.saturating_sub(crop);
    let q = d / 2;
    if d % 2 == 1 && q % 2 == 1 {
        q + 1
    } else {
        q
    }
}

/// Resizes, crops and normalises an image for CLIP: `[3, size, size]` CHW `f32`, channel `c` is
/// `(v / 255 - CLIP_MEAN[c]) / CLIP_STD[c]`. Matches open_clip's eval transform (or
/// AnomalyCLIP's squash) on a PIL image bit for bit.
///
/// Returns an empty vector if `size` is 0 or the image is empty or inconsistent; use
/// [`try_preprocess`] to get an error instead.
pub fn preprocess(img: &RgbImage, size: u32, mode: ResizeMode) -> Vec<f32> {
    if size == 0 || img.is_empty() || !img.is_consistent() {
        return Vec::new();
    }
    let s = size as usize;
    let Some(len) = s.checked_mul(s).and_then(|n| n.checked_mul(3)) else {
        return Vec::new();
    };
    let (rw, rh) = match mode {
        ResizeMode::ShorterSideCrop => match shorter_side_size(img.width, img.height, size) {
            Some(wh) => wh,
            None => return Vec::new(),
        },
        ResizeMode::Squash => (size, size),
    };
    // The resize result is at least size × size on both axes; CenterCrop never pads here.
    let (left, top) = (crop_offset(rw, size) as usize, crop_offset(rh, size) as usize);
    let cropped;
    let (src, left, top) = if (rw, rh) == (img.width, img.height) {
        (img, left, top)
    } else {
        cropped = resize_window(img, (rw as usize, rh as usize), Window { x: left..left + s, y: top..top + s });
        (&cropped, 0, 0)
    };
    if (src.width as usize) < left + s || (src.height as usize) < top + s || !src.is_consistent() {
        // Only when the resize could not allocate (sizes near the address-space limit).
        return Vec::new();
    }
    let w = src.width as usize;
    let mut out = vec![0f32; len];
    for (c, plane) in out.chunks_exact_mut(s * s).enumerate() {
        for (y, row) in plane.chunks_exact_mut(s).enumerate() {
            let start = ((top + y) * w + left) * 3;
            for (o, px) in row.iter_mut().zip(src.data[start..start + s * 3].chunks_exact(3)) {
                *o = (f32::from(px[c]) / 255.0 - CLIP_MEAN[c]) / CLIP_STD[c];
            }
        }
    }
    out
}

/// [`preprocess`], with an [`InputError::Invalid`] naming `name` for a zero `size` or an empty or
/// inconsistent image instead of an empty result.
pub fn try_preprocess(img: &RgbImage, size: u32, mode: ResizeMode, name: &str) -> Result<Vec<f32>, InputError> {
    let invalid = |what: String| Err(InputError::Invalid { path: name.to_string(), what });
    if size == 0 {
        return invalid("preprocessing size must be at least 1".to_string());
    }
    if img.is_empty() {
        return invalid(format!("image is {}x{}, it has no pixels", img.width, img.height));
    }
    if !img.is_consistent() {
        return invalid(format!("pixel buffer does not match the size {}x{}", img.width, img.height));
    }
    let out = preprocess(img, size, mode);
    if out.is_empty() {
        return invalid(format!("preprocessing size {size} is too large"));
    }
    Ok(out)
}

/// Detection's input (METHOD.md A1): the image converted to RGB as PIL's `convert("RGB")` does
/// (alpha dropped, not composited), as AnomalyCLIP's data loaders do, then squashed to
/// `size × size` with PIL's bicubic and normalised.
pub fn detection_pixels(img: &RgbImage, size: u32, name: &str) -> Result<Vec<f32>, InputError> {
    if img.alpha.is_none() {
        return try_preprocess(img, size, ResizeMode::Squash, name);
    }
    let rgb = RgbImage { width: img.width, height: img.height, data: img.data.clone(), alpha: None };
    try_preprocess(&rgb, size, ResizeMode::Squash, name)
}
