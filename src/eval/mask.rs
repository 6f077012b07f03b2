//! Ground-truth masks, read exactly as AnomalyCLIP reads them (METHOD.md A5).
//!
//! AnomalyCLIP's `dataset.py` opens a mask with PIL, converts it to `L` and binarises it
//! (`np.array(mask.convert('L')) > 0`, stored back as an `L` image of 0 / 255); `utils.py`'s
//! `target_transform` then applies torchvision's `Resize((S, S))` to that PIL image (PIL's
//! `BILINEAR`, with its antialiasing support when shrinking), `CenterCrop(S)` (a no-op at S × S)
//! and `ToTensor` (÷ 255), and `test.py` thresholds at 0.5 (`gt > 0.5`). So:
//!
//! 1. **binarise**: a pixel is anomalous when its PIL `L` value is above 0. For RGB(A) and
//!    palette masks that is ITU-R 601 luma with PIL's integer formula
//!    `(R·19595 + G·38470 + B·7471 + 2^15) >> 16`, so a pure blue of 1–4 is *not* anomalous (as
//!    in PIL); grey masks use their value; 16-bit grey masks any value above 0 (PIL's `I;16` →
//!    `L` clips, it does not scale); other 16-bit masks their high byte (what Pillow decodes);
//!    alpha is ignored. EXIF orientation is not applied (PIL does not either).
//! 2. **resize** the 0/255 image to S × S with PIL's bilinear filter, bit-exact
//!    ([`resize_grey_bilinear`]);
//! 3. **threshold**: anomalous where the resized byte v has v / 255 > 0.5, i.e. v ≥ 128.
//!
//! A normal image's mask is all zero (AnomalyCLIP builds it as zeros of the image's size).

use crate::io::image::{decode_dynamic, ImageLimits};
use crate::io::preprocess::resize_grey_bilinear;

use super::dataset::DatasetError;
use image::DynamicImage;

/// A mask binarised and resized to the model's S × S.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mask {
    /// The mask file's width (to compare with its image's).
    pub width: u32,
    /// The mask file's height.
    pub height: u32,
    /// S × S values, row-major, true = anomalous.
    pub pixels: Vec<bool>,
    /// The side S.
    pub size: usize,
}

impl Mask {
    /// Anomalous pixels at S × S.
    pub fn anomalous(&self) -> usize {
        self.pixels.iter().filter(|&&p| p).count()
    }
}

/// PIL's `L` value of an 8-bit RGB pixel (ITU-R 601-2 luma, PIL's fixed-point formula).
fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((u32::from(r) * 19595 + u32::from(g) * 38470 + u32::from(b) * 7471 + 0x8000) >> 16) as u8
}

/// 0 / 255 per pixel: 255 where PIL's `convert('L')` of the decoded mask is above 0.
fn binarise(image: DynamicImage) -> Option<Vec<u8>> {
    let on = |b: bool| if b { 255u8 } else { 0 };
    let hi = |v: u16| (v >> 8) as u8;
    Some(match image {
        DynamicImage::ImageLuma8(m) => m.as_raw().iter().map(|&v| on(v > 0)).collect(),
        DynamicImage::ImageLumaA8(m) => m.as_raw().chunks_exact(2).map(|p| on(p[0] > 0)).collect(),
        DynamicImage::ImageLuma16(m) => m.as_raw().iter().map(|&v| on(v > 0)).collect(),
        DynamicImage::ImageLumaA16(m) => m.as_raw().chunks_exact(2).map(|p| on(hi(p[0]) > 0)).collect(),
        DynamicImage::ImageRgb8(m) => m.as_raw().chunks_exact(3).map(|p| on(luma(p[0], p[1], p[2]) > 0)).collect(),
        DynamicImage::ImageRgba8(m) => m.as_raw().chunks_exact(4).map(|p| on(luma(p[0], p[1], p[2]) > 0)).collect(),
        DynamicImage::ImageRgb16(m) => {
            m.as_raw().chunks_exact(3).map(|p| on(luma(hi(p[0]), hi(p[1]), hi(p[2])) > 0)).collect()
        }
        DynamicImage::ImageRgba16(m) => {
            m.as_raw().chunks_exact(4).map(|p| on(luma(hi(p[0]), hi(p[1]), hi(p[2])) > 0)).collect()
        }
        _ => return None,
    })
}

/// Decodes a mask file held in memory (PNG or JPEG), binarises it and resizes it to
/// `size` × `size` as AnomalyCLIP does (see the module doc). `name` labels errors.
///
/// # Shapes
/// The result's `pixels`: `[size, size]`.
///
/// # Errors
/// [`DatasetError::Mask`] naming `name` if the bytes are not a PNG or JPEG within the default
/// [`ImageLimits`], or `size` is 0.
pub fn decode_mask(bytes: &[u8], name: &str, size: usize) -> Result<Mask, DatasetError> {
    let err = |what: String| DatasetError::Mask { path: name.to_string(), what };
    let decoded = decode_dynamic(bytes, name, &ImageLimits::default()).map_err(|e| err(strip_name(&e, name)))?;
    let (width, height) = (decoded.image.width(), decoded.image.height());
    let binary = binarise(decoded.image).ok_or_else(|| err("unsupported pixel format".into()))?;
    let resized = resize_grey_bilinear(&binary, (width as usize, height as usize), (size, size))
        .ok_or_else(|| err(format!("cannot resize {width}x{height} to {size}x{size}")))?;
    Ok(Mask { width, height, pixels: resized.iter().map(|&v| v >= 128).collect(), size })
}

/// Reads a mask file: [`decode_mask`] of its bytes.
///
/// # Errors
/// [`DatasetError::Mask`] naming `path` if it cannot be read or decoded.
#[cfg(not(target_arch = "wasm32"))]
pub fn read_mask(path: &std::path::Path, size: usize) -> Result<Mask, DatasetError> {
    let name = path.display().to_string();
    let bytes = crate::io::image::read_image_bytes(path, &ImageLimits::default())
        .map_err(|e| DatasetError::Mask { path: name.clone(), what: strip_name(&e, &name) })?;
    decode_mask(&bytes, &name, size)
}

/// An input error's message without the leading `name: ` (the mask error names the file).
fn strip_name(e: &crate::io::InputError, name: &str) -> String {
    let s = e.to_string();
    s.strip_prefix(&format!("{name}: ")).map(str::to_owned).unwrap_or(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(width: u32, height: u32, kind: image::ExtendedColorType, data: &[u8]) -> Vec<u8> {
        use image::ImageEncoder;
        let mut out = Vec::new();
        image::codecs::png::PngEncoder::new(&mut out).write_image(data, width, height, kind).unwrap();
        out
    }

    #[test]
    fn luma_matches_pil_rounding() {
        assert_eq!(luma(0, 0, 4), 0);
        assert_eq!(luma(0, 0, 5), 1);
        assert_eq!(luma(255, 255, 255), 255);
        assert_eq!(luma(1, 0, 0), 0);
        assert_eq!(luma(2, 0, 0), 1);
    }

    #[test]
    fn same_size_masks_are_binarised_not_blurred() {
        let grey = png(2, 2, image::ExtendedColorType::L8, &[0, 1, 255, 0]);
        let m = decode_mask(&grey, "m.png", 2).unwrap();
        assert_eq!((m.width, m.height, m.size), (2, 2, 2));
        assert_eq!(m.pixels, [false, true, true, false]);
        assert_eq!(m.anomalous(), 2);
        let rgb = png(2, 2, image::ExtendedColorType::Rgb8, &[0, 0, 4, 0, 0, 5, 9, 9, 9, 0, 0, 0]);
        assert_eq!(decode_mask(&rgb, "rgb.png", 2).unwrap().pixels, [false, true, true, false]);
        let e = decode_mask(&grey, "m.png", 0).unwrap_err();
        assert!(e.to_string().contains("m.png"), "{e}");
    }

    #[test]
    fn garbage_is_an_error_naming_the_file() {
        let e = decode_mask(b"not an image", "bad_mask.png", 8).unwrap_err();
        assert!(matches!(e, DatasetError::Mask { .. }));
        assert!(e.to_string().starts_with("mask bad_mask.png: "), "{e}");
    }

    /// `tests/fixtures/masks/` (tools/make_mask_fixtures.py): AnomalyCLIP's PIL + torchvision
    /// pipeline on L, LA, RGB, palette and 16-bit grey masks, shrunk and enlarged. Exact.
    #[test]
    fn masks_match_anomalyclip_reference() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/masks");
        let text = std::fs::read_to_string(dir.join("expected.json")).unwrap();
        let expected: serde_json::Value = serde_json::from_str(&text).unwrap();
        let cases = expected["cases"].as_array().unwrap();
        assert!(cases.len() >= 10);
        for case in cases {
            let file = case["file"].as_str().unwrap();
            let size = case["size"].as_u64().unwrap() as usize;
            let m = read_mask(&dir.join(file), size).unwrap();
            assert_eq!(
                (u64::from(m.width), u64::from(m.height)),
                (case["width"].as_u64().unwrap(), case["height"].as_u64().unwrap())
            );
            let want: Vec<bool> = case["rows"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| r.as_str().unwrap().chars().map(|c| c == '1'))
                .collect();
            let wrong = m.pixels.iter().zip(&want).filter(|(a, b)| a != b).count();
            assert_eq!(wrong, 0, "{file} at {size}: {wrong} pixels differ from the reference");
            assert_eq!(m.pixels.len(), want.len());
        }
    }
}
