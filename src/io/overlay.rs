//! Heat-map overlays: an anomaly map coloured with the jet ramp, blended over its image, with an
//! optional labelled colour bar and an optional outline of the regions above a threshold. The CLI
//! writes these as `NAME.overlay.png` (DESIGN.md, "CLI contract"); the web page draws the same.
//!
//! Maps are resized to the image with the bilinear rule of PyTorch's `align_corners=False` (the
//! CPU twin [`resize_bilinear`]), the same rule the scoring uses to upsample maps.

use crate::backend::cpu::resize::resize_bilinear;
use crate::io::image::RgbImage;
use crate::io::InputError;

/// What errors about overlay arguments name as their source.
const SOURCE: &str = "overlay";

/// The colour [`OverlayOptions::outline`] draws region boundaries in.
pub const OUTLINE_COLOUR: [u8; 3] = [255, 255, 255];

/// The classic jet ramp (dark blue, blue, cyan, yellow, red, dark red) at `v`, clamped to
/// `[0, 1]`; NaN is black.
///
/// Each channel is the piecewise-linear `clamp(1.5 - |4v - k|, 0, 1)` with k = 3 (red), 2 (green)
/// and 1 (blue), as MATLAB's and matplotlib's `jet`: 0 → (0, 0, 128), 0.5 → (128, 255, 128),
/// 1 → (128, 0, 0).
pub fn colormap_jet(v: f32) -> [u8; 3] {
    if v.is_nan() {
        return [0, 0, 0];
    }
    let v = v.clamp(0.0, 1.0);
    let channel = |k: f32| ((1.5 - (4.0 * v - k).abs()).clamp(0.0, 1.0) * 255.0).round() as u8;
    [channel(3.0), channel(2.0), channel(1.0)]
}

/// How [`render_overlay`] draws a map. Build with `OverlayOptions::default()` and the `with_*`
/// setters.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub struct OverlayOptions {
    /// Weight of the heat-map colour in the blend, in `[0, 1]` (0: the image only). Default 0.5.
    pub opacity: f32,
    /// The map values shown at the bottom and the top of the colour scale; values outside are
    /// clamped. Default `(0.0, 1.0)`.
    pub range: (f32, f32),
    /// Append a colour bar labelled with the range on the right. Default `true`.
    pub colour_bar: bool,
    /// Outline (in [`OUTLINE_COLOUR`]) the regions where the map is at least this value.
    /// Default `None`.
    pub outline: Option<f32>,
}

impl Default for OverlayOptions {
    fn default() -> Self {
        OverlayOptions { opacity: 0.5, range: (0.0, 1.0), colour_bar: true, outline: None }
    }
}

impl OverlayOptions {
    /// Sets [`opacity`](Self::opacity).
    pub fn with_opacity(mut self, opacity: f32) -> Self {
        self.opacity = opacity;
        self
    }

    /// Sets [`range`](Self::range).
    pub fn with_range(mut self, low: f32, high: f32) -> Self {
        self.range = (low, high);
        self
    }

    /// Sets [`colour_bar`](Self::colour_bar).
    pub fn with_colour_bar(mut self, colour_bar: bool) -> Self {
        self.colour_bar = colour_bar;
        self
    }

    /// Sets [`outline`](Self::outline).
    pub fn with_outline(mut self, threshold: Option<f32>) -> Self {
        self.outline = threshold;
        self
    }

    fn check(&self) -> Result<(), InputError> {
        let (lo, hi) = self.range;
        if !(0.0..=1.0).contains(&self.opacity) {
            return Err(invalid(format!("opacity {} is not in [0, 1]", self.opacity)));
        }
        if !lo.is_finite() || !hi.is_finite() || lo > hi {
            return Err(invalid(format!("range ({lo}, {hi}) must be finite with low <= high")));
        }
        Ok(())
    }

    /// Where `v` falls on the colour scale, 0 at the bottom and 1 at the top (NaN stays NaN).
    fn position(&self, v: f32) -> f32 {
        let (lo, hi) = self.range;
        if hi > lo {
            (v - lo) / (hi - lo)
        } else if v >= hi {
            1.0
        } else if v < hi {
            0.0
        } else {
            f32::NAN
        }
    }
}

fn invalid(what: String) -> InputError {
    InputError::Invalid { path: SOURCE.into(), what }
}

/// Checks that `map` is a non-empty `map_w` × `map_h` map.
fn check_map(map: &[f32], map_w: usize, map_h: usize) -> Result<(), InputError> {
    if map_w == 0 || map_h == 0 || map_w.checked_mul(map_h) != Some(map.len()) {
        return Err(invalid(format!("map of {} values given as {map_w}x{map_h}", map.len())));
    }
    Ok(())
}

fn check_image(image: &RgbImage) -> Result<(), InputError> {
    if image.is_empty() || !image.is_consistent() {
        return Err(invalid(format!(
            "image of {}x{} pixels has no pixels or wrong buffer sizes",
            image.width, image.height
        )));
    }
    Ok(())
}

/// `map` (`map_w` × `map_h`) resized to `width` × `height`, bilinearly with PyTorch's
/// `align_corners=False` rule; a copy if the size is already right.
///
/// # Errors
/// [`InputError::Invalid`] if a size is zero or `map.len() != map_w * map_h`.
pub fn resize_map(
    map: &[f32],
    map_w: usize,
    map_h: usize,
    width: usize,
    height: usize,
) -> Result<Vec<f32>, InputError> {
    check_map(map, map_w, map_h)?;
    if width == 0 || height == 0 {
        return Err(invalid(format!("cannot resize a map to {width}x{height}")));
    }
    if (map_w, map_h) == (width, height) {
        return Ok(map.to_vec());
    }
    let mut out = vec![0.0; width * height];
    resize_bilinear(map, 1, map_h, map_w, height, width, &mut out);
    Ok(out)
}

/// The image with `map` drawn over it: the map resized to the image, coloured with
/// [`colormap_jet`] over `opts.range`, blended at `opts.opacity`, outlined at `opts.outline`,
/// and with `opts.colour_bar` a labelled colour bar appended on the right (so the result is then
/// wider than the image; its left `image.width` columns are the overlay itself).
///
/// The image's alpha, if any, is ignored (the colours are used as stored, as the model sees
/// them); the result is opaque.
///
/// # Shapes
/// `map` is `map_h` rows of `map_w` values; it may be any size (typically the image's, or the
/// model's S × S).
///
/// # Errors
/// [`InputError::Invalid`] if the image or the map is empty, `map.len() != map_w * map_h`, the
/// opacity is outside `[0, 1]` or the range is not finite and increasing.
pub fn render_overlay(
    image: &RgbImage,
    map: &[f32],
    map_w: usize,
    map_h: usize,
    opts: &OverlayOptions,
) -> Result<RgbImage, InputError> {
    check_image(image)?;
    opts.check()?;
    let (w, h) = (image.width as usize, image.height as usize);
    let map = resize_map(map, map_w, map_h, w, h)?;
    let a = opts.opacity;
    let mut data = Vec::with_capacity(image.data.len());
    for (px, &v) in image.data.chunks_exact(3).zip(&map) {
        let c = colormap_jet(opts.position(v));
        data.extend((0..3).map(|i| (f32::from(px[i]) * (1.0 - a) + f32::from(c[i]) * a).round() as u8));
    }
    let mut out = RgbImage { width: image.width, height: image.height, data, alpha: None };
    if let Some(threshold) = opts.outline {
        outline(&mut out, &map, w, h, threshold, OUTLINE_COLOUR)?;
    }
    if opts.colour_bar {
        out = colour_bar::append(&out, opts.range);
    }
    Ok(out)
}

/// Draws, in `colour`, the 1-pixel inner boundary of the regions where `map >= threshold`:
/// every pixel of a region with a 4-neighbour outside it (or at the map's edge).
///
/// The map covers the top-left `map_w` × `map_h` pixels of `img` (the whole of an image, or the
/// image part of an overlay with a colour bar); resize it with [`resize_map`] first if needed.
/// NaN values are outside every region.
///
/// # Errors
/// [`InputError::Invalid`] if `map.len() != map_w * map_h`, a size is zero or the map is larger
/// than the image.
pub fn outline(
    img: &mut RgbImage,
    map: &[f32],
    map_w: usize,
    map_h: usize,
    threshold: f32,
    colour: [u8; 3],
) -> Result<(), InputError> {
    check_image(img)?;
    check_map(map, map_w, map_h)?;
    let w = img.width as usize;
    if map_w > w || map_h > img.height as usize {
        return Err(invalid(format!("map of {map_w}x{map_h} is larger than the {}x{} image", img.width, img.height)));
    }
    let inside = |x: usize, y: usize| map[y * map_w + x] >= threshold;
    for y in 0..map_h {
        for x in 0..map_w {
            let edge = x == 0 || y == 0 || x + 1 == map_w || y + 1 == map_h;
            if inside(x, y)
                && (edge || !inside(x - 1, y) || !inside(x + 1, y) || !inside(x, y - 1) || !inside(x, y + 1))
            {
                img.data[(y * w + x) * 3..][..3].copy_from_slice(&colour);
            }
        }
    }
    Ok(())
}

/// PNG bytes of `img`: 8-bit RGB, or RGBA when it has an alpha channel.
///
/// # Errors
/// [`InputError::Invalid`] if the buffers do not match the size or the encoder fails.
pub fn encode_png(img: &RgbImage) -> Result<Vec<u8>, InputError> {
    use image::{codecs::png::PngEncoder, ExtendedColorType, ImageEncoder};
    check_image(img)?;
    let (bytes, kind) = match &img.alpha {
        None => (img.data.clone(), ExtendedColorType::Rgb8),
        Some(alpha) => {
            let rgba = img.data.chunks_exact(3).zip(alpha).flat_map(|(p, &a)| [p[0], p[1], p[2], a]).collect();
            (rgba, ExtendedColorType::Rgba8)
        }
    };
    let mut out = Vec::new();
    PngEncoder::new(&mut out)
        .write_image(&bytes, img.width, img.height, kind)
        .map_err(|e| InputError::Invalid { path: "png output".into(), what: format!("cannot encode: {e}") })?;
    Ok(out)
}

/// A small RGB drawing surface with a bitmap font (also used by the evaluation plots).
pub(crate) mod canvas;
/// The labelled colour bar appended on the right of an overlay.
mod colour_bar;

#[cfg(test)]
mod tests {
    use super::colour_bar::{label, Layout};
    use super::*;

    #[test]
    fn jet_endpoints_and_midpoints() {
        assert_eq!(colormap_jet(0.0), [0, 0, 128]);
        assert_eq!(colormap_jet(0.25), [0, 128, 255]);
        assert_eq!(colormap_jet(0.5), [128, 255, 128]);
        assert_eq!(colormap_jet(0.75), [255, 128, 0]);
        assert_eq!(colormap_jet(1.0), [128, 0, 0]);
        assert_eq!(colormap_jet(-3.0), colormap_jet(0.0));
        assert_eq!(colormap_jet(7.0), colormap_jet(1.0));
        assert_eq!(colormap_jet(f32::NAN), [0, 0, 0]);
    }

    #[test]
    fn labels_are_short_and_exact_enough() {
        let cases = [(0.0, "0"), (1.0, "1"), (0.5, "0.5"), (0.123456, "0.1235"), (-2.5, "-2.5")];
        for (v, want) in
            cases.into_iter().chain([(12.3456, "12.35"), (1234.5678, "1235"), (0.00123, "0.00123"), (2.5e-5, "2.5e-5")])
        {
            assert_eq!(label(v), want, "{v}");
        }
        assert_eq!(label(-1e-7), "-1.0e-7");
    }

    #[test]
    fn colour_bar_is_legible_on_a_large_image() {
        let l = Layout::new(1024, 1024, (0.0, 1.0));
        assert_eq!((l.scale, l.bar), (4, 41));
        assert_eq!(l.labels, ["1".to_string(), "0.5".into(), "0".into()]);
        assert_eq!(Layout::new(100, 50, (0.0, 1.0)).bar, 24);
    }

    #[test]
    fn degenerate_range_is_a_step() {
        let o = OverlayOptions::default().with_range(0.3, 0.3);
        assert_eq!((o.position(0.2), o.position(0.3), o.position(0.9)), (0.0, 1.0, 1.0));
        assert!(o.position(f32::NAN).is_nan());
    }
}
