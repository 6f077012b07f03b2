//! Image decoding: PNG and JPEG bytes to an 8-bit [`RgbImage`], the way PIL would see them.
//!
//! The reference pipelines (open_clip, AnomalyCLIP) open images with PIL and resize them *in the
//! image's own mode* before `convert("RGB")`. To reproduce that, decoding keeps what matters for
//! the resize and nothing else:
//!
//! - **Grey (`L`)** is replicated to R = G = B. Resizing the three equal channels gives exactly
//!   what PIL gets by resizing the single band and replicating afterwards.
//! - **Alpha** (PNG grey+alpha and RGBA) is kept, straight (not premultiplied), in
//!   [`RgbImage::alpha`]: PIL's resize premultiplies it, and
//!   [`resize_bicubic`](crate::io::preprocess::resize_bicubic) does the same. An alpha channel that
//!   is 255 everywhere is dropped (resizing with it gives the same bytes as without). Transparency
//!   *keys* (PNG `tRNS` on grey, RGB and palette images) are ignored, as PIL ignores them when it
//!   resizes and converts such images to RGB.
//! - **16-bit PNGs** keep the high byte of every sample (`v >> 8`). That is what Pillow does for
//!   16-bit RGB, RGBA and grey+alpha files (it decodes them straight to 8-bit `RGB`/`RGBA`), so
//!   those match PIL exactly. For 16-bit *grey* Pillow opens mode `I;16`, and its
//!   `convert("RGB")` clips every value above 255 to white — almost any 16-bit grey image comes
//!   out white. We do not copy that: 16-bit grey is scaled to 8 bits by the same high-byte rule as
//!   the other 16-bit kinds (tested against PIL on the 8-bit `L` image `v >> 8`).
//! - **Palette PNGs** are expanded to RGB and then resized bicubically. (PIL resizes mode `P`
//!   with *nearest neighbour*, silently; that is a PIL quirk we do not reproduce. Our result equals
//!   PIL's on `Image.open(f).convert("RGB")`.) Low-bit-depth grey is scaled to 8 bits as in PIL.
//! - **EXIF orientation** (JPEG APP1, PNG `eXIf`) is applied, so a photo taken upright is upright.
//!   PIL's `Image.open` does *not* do this (it needs `ImageOps.exif_transpose`), so for rotated
//!   files our input differs from a plain PIL pipeline on purpose.
//! - **JPEG** is decoded by [`crate::io::jpeg`], which gives the very bytes PIL gives
//!   (libjpeg-turbo's accurate integer IDCT, fancy chroma upsampling and colour tables; PIL's
//!   CMYK → RGB), checked against PIL on generated files and every JPEG in the shared data.
//!   What it cannot reproduce exactly (arithmetic coding, lossless, 12-bit, truncated data) it
//!   refuses, naming the reason. A JPEG cut off before its end-of-image marker is an error, as
//!   in PIL.
//!
//! Size limits are checked on the dimensions declared in the file header, before anything the
//! size of the image is allocated, and are also passed to the PNG decoder as `image::Limits`
//! (the JPEG decoder refuses a file with a second frame, so the checked header is its size).

use std::io::Cursor;
use std::path::Path;

use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader};

use crate::io::{jpeg, InputError};

mod header;

use header::{decode_err, read_header, Kind};

/// An 8-bit RGB image, row-major, 3 bytes per pixel.
///
/// `data.len()` must be `width * height * 3`. `alpha`, when present, holds one straight
/// (un-premultiplied) alpha byte per pixel (`width * height` bytes); it only influences resizing
/// (as in PIL, colours are premultiplied by it while resampling) and is dropped by preprocessing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Pixels, row-major, R G B for each.
    pub data: Vec<u8>,
    /// Optional straight alpha, one byte per pixel, row-major. `None` means opaque.
    pub alpha: Option<Vec<u8>>,
}

impl RgbImage {
    /// An opaque image from RGB bytes; `None` if `data.len() != width * height * 3`.
    pub fn from_rgb(width: u32, height: u32, data: Vec<u8>) -> Option<Self> {
        (Some(data.len()) == pixel_count(width, height).and_then(|n| n.checked_mul(3))).then_some(RgbImage {
            width,
            height,
            data,
            alpha: None,
        })
    }

    /// An image from interleaved RGBA bytes (such as a canvas' `ImageData`); `None` if
    /// `rgba.len() != width * height * 4`. Alpha is kept only if some pixel is not opaque.
    pub fn from_rgba(width: u32, height: u32, rgba: &[u8]) -> Option<Self> {
        if Some(rgba.len()) != pixel_count(width, height).and_then(|n| n.checked_mul(4)) {
            return None;
        }
        let data: Vec<u8> = rgba.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
        let alpha: Vec<u8> = rgba.chunks_exact(4).map(|p| p[3]).collect();
        Some(RgbImage { width, height, data, alpha: keep_alpha(alpha) })
    }

    /// Whether the buffers have the lengths the dimensions require.
    pub fn is_consistent(&self) -> bool {
        let Some(n) = pixel_count(self.width, self.height) else { return false };
        Some(self.data.len()) == n.checked_mul(3) && self.alpha.as_ref().is_none_or(|a| a.len() == n)
    }

    /// Whether the image has no pixels.
    pub fn is_empty(&self) -> bool {
        self.width == 0 || self.height == 0
    }
}

/// `width * height` as `usize`, if it fits.
fn pixel_count(width: u32, height: u32) -> Option<usize> {
    usize::try_from(u64::from(width) * u64::from(height)).ok()
}

/// `Some(alpha)` unless every value is 255.
fn keep_alpha(alpha: Vec<u8>) -> Option<Vec<u8>> {
    alpha.iter().any(|&a| a != 255).then_some(alpha)
}

/// Limits applied before any pixel is decoded.
///
/// The default allows sides up to 16384 pixels and 64 Mpixel in all (`16384 * 16384 / 4`, e.g.
/// 8192×8192): a 64-Mpixel 16-bit RGBA PNG needs a 512 MiB decode buffer plus 256 MiB for the
/// RGB + alpha result, which still fits in a 32-bit wasm address space next to a model, while
/// every real camera or inspection image is well below it. Everything is resized to a few hundred
/// pixels anyway, so nothing is gained by accepting more.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageLimits {
    /// The largest width or height accepted.
    pub max_side: u32,
    /// The largest `width * height` accepted.
    pub max_pixels: u64,
}

impl Default for ImageLimits {
    fn default() -> Self {
        ImageLimits { max_side: 16384, max_pixels: 16384 * 16384 / 4 }
    }
}

impl ImageLimits {
    /// `Ok` if an image of this size is allowed, else [`InputError::TooLarge`] (or
    /// [`InputError::Invalid`] for a zero side).
    pub fn check(&self, width: u64, height: u64, name: &str) -> Result<(), InputError> {
        if width == 0 || height == 0 {
            return Err(InputError::Invalid {
                path: name.to_string(),
                what: format!("image is {width}x{height}, it has no pixels"),
            });
        }
        if width > u64::from(self.max_side) || height > u64::from(self.max_side) {
            return Err(InputError::TooLarge { path: name.to_string(), width, height, limit: self.max_side });
        }
        if width.checked_mul(height).is_none_or(|n| n > self.max_pixels) {
            // The error names a square limit; report the side of the square with `max_pixels`.
            let side = u32::try_from(self.max_pixels.isqrt()).unwrap_or(u32::MAX).min(self.max_side);
            return Err(InputError::TooLarge { path: name.to_string(), width, height, limit: side });
        }
        Ok(())
    }

    /// The most bytes a decoder may allocate: 8 bytes per pixel (16-bit RGBA) plus 64 MiB.
    fn max_alloc(&self) -> u64 {
        self.max_pixels.saturating_mul(8).saturating_add(64 << 20)
    }
}

/// Decodes a PNG or JPEG file held in memory. `name` only labels errors.
///
/// The header's dimensions are checked against `limits` before any pixel buffer exists; EXIF
/// orientation is applied; see the module documentation for how grey, alpha and 16-bit images
/// are mapped to 8-bit RGB.
pub fn decode_image(bytes: &[u8], name: &str, limits: &ImageLimits) -> Result<RgbImage, InputError> {
    let Decoded { mut image, orientation, has_alpha_channel } = decode_dynamic(bytes, name, limits)?;
    image.apply_orientation(orientation);
    let image = to_rgb(image, has_alpha_channel);
    if !image.is_consistent() {
        return Err(decode_err(name, "decoder returned fewer pixels than the header declares"));
    }
    Ok(image)
}

/// A decoded file as the decoder gives it, before orientation and conversion.
pub(crate) struct Decoded {
    /// The pixels in the file's own colour type and depth (palettes expanded).
    pub image: DynamicImage,
    /// The EXIF orientation (not applied).
    pub orientation: image::metadata::Orientation,
    /// The file's own samples include an alpha channel (PNG colour types 4 and 6).
    pub has_alpha_channel: bool,
}

/// Decodes a PNG or JPEG held in memory with the size checks of [`decode_image`], but neither
/// orientation nor conversion to RGB (ground-truth masks are read this way, as PIL reads them).
pub(crate) fn decode_dynamic(bytes: &[u8], name: &str, limits: &ImageLimits) -> Result<Decoded, InputError> {
    let header = read_header(bytes, name)?;
    limits.check(header.width, header.height, name)?;

    let too_large = || InputError::TooLarge {
        path: name.to_string(),
        width: header.width,
        height: header.height,
        limit: limits.max_side,
    };
    let map_err = |e: ImageError| match e {
        ImageError::Limits(_) => too_large(),
        other => decode_err(name, other.to_string()),
    };

    if header.kind == Kind::Jpeg {
        let jpeg = jpeg::decode(bytes).map_err(|e| decode_err(name, e.to_string()))?;
        let (w, h) = (jpeg.width, jpeg.height);
        let short = || decode_err(name, "decoder returned fewer pixels than the header declares");
        let image = if jpeg.gray {
            DynamicImage::ImageLuma8(image::GrayImage::from_raw(w, h, jpeg.pixels).ok_or_else(short)?)
        } else {
            DynamicImage::ImageRgb8(image::RgbImage::from_raw(w, h, jpeg.pixels).ok_or_else(short)?)
        };
        let orientation = jpeg
            .orientation
            .and_then(|o| u8::try_from(o).ok())
            .and_then(image::metadata::Orientation::from_exif)
            .unwrap_or(image::metadata::Orientation::NoTransforms);
        return Ok(Decoded { image, orientation, has_alpha_channel: false });
    }
    let mut reader = ImageReader::new(Cursor::new(bytes));
    reader.set_format(ImageFormat::Png);
    let mut image_limits = image::Limits::default();
    image_limits.max_image_width = Some(limits.max_side);
    image_limits.max_image_height = Some(limits.max_side);
    image_limits.max_alloc = Some(limits.max_alloc());
    reader.limits(image_limits);
    let mut decoder = reader.into_decoder().map_err(map_err)?;

    // The decoder's view of the size must be the one checked (a JPEG may hold several frames).
    let (width, height) = decoder.dimensions();
    if (u64::from(width), u64::from(height)) != (header.width, header.height) {
        limits.check(width.into(), height.into(), name)?;
    }
    // A damaged EXIF block is no reason to reject the pixels.
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let image = DynamicImage::from_decoder(decoder).map_err(map_err)?;
    Ok(Decoded { image, orientation, has_alpha_channel: header.has_alpha_channel })
}

/// Reads and decodes a PNG or JPEG file; errors name `path`.
pub fn read_image(path: &Path, limits: &ImageLimits) -> Result<RgbImage, InputError> {
    let bytes = read_image_bytes(path, limits)?;
    decode_image(&bytes, &path.display().to_string(), limits)
}

/// The bytes of an image file, refusing (before reading) a file larger than any image within
/// `limits` could be; errors name `path`.
pub(crate) fn read_image_bytes(path: &Path, limits: &ImageLimits) -> Result<Vec<u8>, InputError> {
    let name = path.display().to_string();
    let io_err = |source| InputError::Io { path: name.clone(), source };
    // A file far larger than any image within the limits is not read into memory.
    let len = std::fs::metadata(path).map_err(io_err)?.len();
    let max_file = limits.max_alloc();
    if len > max_file {
        return Err(InputError::Invalid {
            path: name,
            what: format!("file is {len} bytes, more than any image within the limits ({max_file} bytes)"),
        });
    }
    std::fs::read(path).map_err(io_err)
}

/// 8-bit RGB (+ alpha) from whatever the decoder produced. 16-bit samples keep their high byte.
fn to_rgb(image: DynamicImage, has_alpha_channel: bool) -> RgbImage {
    let (width, height) = (image.width(), image.height());
    let hi = |v: u16| (v >> 8) as u8;
    let (data, alpha): (Vec<u8>, Option<Vec<u8>>) = match image {
        DynamicImage::ImageRgb8(img) => (img.into_raw(), None),
        DynamicImage::ImageLuma8(img) => (img.as_raw().iter().flat_map(|&v| [v; 3]).collect(), None),
        DynamicImage::ImageLumaA8(img) => {
            let raw = img.as_raw();
            (raw.chunks_exact(2).flat_map(|p| [p[0]; 3]).collect(), Some(raw.chunks_exact(2).map(|p| p[1]).collect()))
        }
        DynamicImage::ImageRgba8(img) => {
            let raw = img.as_raw();
            (
                raw.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect(),
                Some(raw.chunks_exact(4).map(|p| p[3]).collect()),
            )
        }
        DynamicImage::ImageLuma16(img) => (img.as_raw().iter().flat_map(|&v| [hi(v); 3]).collect(), None),
        DynamicImage::ImageLumaA16(img) => {
            let raw = img.as_raw();
            (
                raw.chunks_exact(2).flat_map(|p| [hi(p[0]); 3]).collect(),
                Some(raw.chunks_exact(2).map(|p| hi(p[1])).collect()),
            )
        }
        DynamicImage::ImageRgb16(img) => (img.as_raw().iter().map(|&v| hi(v)).collect(), None),
        DynamicImage::ImageRgba16(img) => {
            let raw = img.as_raw();
            (
                raw.chunks_exact(4).flat_map(|p| [hi(p[0]), hi(p[1]), hi(p[2])]).collect(),
                Some(raw.chunks_exact(4).map(|p| hi(p[3])).collect()),
            )
        }
        // Float images cannot come from PNG or JPEG; convert generically just in case.
        other => {
            let rgba = other.to_rgba8();
            let raw = rgba.as_raw();
            (
                raw.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect(),
                Some(raw.chunks_exact(4).map(|p| p[3]).collect()),
            )
        }
    };
    // Alpha made up from a transparency key is ignored (PIL ignores it too); see the module docs.
    let alpha = if has_alpha_channel { alpha.and_then(keep_alpha) } else { None };
    RgbImage { width, height, data, alpha }
}
