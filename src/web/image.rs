//! Images from JS values to [`RgbImage`] and back.
//!
//! - **PNG and JPEG Blobs/Files** are decoded by the same Rust decoder as the native CLI
//!   ([`decode_image`]): identical pixels, EXIF orientation applied, size limits checked on the
//!   header before anything is decoded.
//! - **Other Blobs** (WebP, GIF, AVIF, BMP, …) are decoded by the browser (`createImageBitmap`,
//!   orientation from the file, no colour-space conversion, alpha not premultiplied) and read
//!   back through an `OffscreenCanvas`.
//! - **`ImageData`** is used as it is (RGBA, straight alpha).
//! - **`ImageBitmap`** (and anything else `createImageBitmap` accepts: `<img>`, `<canvas>`,
//!   `VideoFrame`, …) is drawn to an `OffscreenCanvas` and read back. A canvas stores colours
//!   premultiplied by alpha, so semi-transparent pixels may differ by a level from the file.
//!
//! Like the CLI, alpha is dropped for detection (PIL's `convert("RGB")`), not composited.

use js_sys::{Object, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Blob, ColorSpaceConversion, File, ImageBitmap, ImageBitmapOptions, ImageData, ImageOrientation, OffscreenCanvas,
    OffscreenCanvasRenderingContext2d, PremultiplyAlpha,
};

use crate::io::image::{decode_image, ImageLimits, RgbImage};
use crate::io::InputError;

use super::error::{js_message, ErrorKind, WebError};

#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    /// The global `createImageBitmap` (window or worker).
    #[wasm_bindgen(catch, js_name = createImageBitmap)]
    fn create_image_bitmap(image: &JsValue, options: &ImageBitmapOptions) -> Result<js_sys::Promise, JsValue>;
}

/// The largest image file read (compressed bytes): far above any real photo, well below what
/// would strain the tab.
pub const MAX_IMAGE_FILE_BYTES: f64 = 512.0 * 1024.0 * 1024.0;

/// An image and the name messages use for it.
pub struct NamedImage {
    /// The pixels.
    pub image: RgbImage,
    /// The file name, or a description of the source.
    pub name: String,
}

fn image_err(name: &str, what: impl Into<String>) -> WebError {
    WebError::from(InputError::Invalid { path: name.to_string(), what: what.into() })
}

/// Reads any image value `detect` accepts (see the module docs).
pub async fn read(value: &JsValue, limits: &ImageLimits) -> Result<NamedImage, WebError> {
    if let Some(data) = value.dyn_ref::<ImageData>() {
        let name = "ImageData".to_string();
        return Ok(NamedImage { image: from_image_data(data, &name, limits)?, name });
    }
    if let Some(blob) = value.dyn_ref::<Blob>() {
        return read_blob(blob, limits).await;
    }
    if let Some(bitmap) = value.dyn_ref::<ImageBitmap>() {
        let name = "ImageBitmap".to_string();
        return Ok(NamedImage { image: from_bitmap(bitmap, &name, limits)?, name });
    }
    if value.is_object() {
        let name = "image".to_string();
        let bitmap = browser_bitmap(value, &name).await.map_err(|e| {
            if e.kind == ErrorKind::Image {
                WebError::argument(format!(
                    "detect() takes an ImageBitmap, a Blob or File, ImageData, or anything createImageBitmap \
                     accepts; this value could not be used: {}",
                    e.message
                ))
            } else {
                e
            }
        })?;
        let image = from_bitmap(&bitmap, &name, limits);
        bitmap.close();
        return Ok(NamedImage { image: image?, name });
    }
    Err(WebError::argument(format!(
        "detect() takes an ImageBitmap, a Blob or File, or ImageData, not {}",
        value.js_typeof().as_string().unwrap_or_default()
    )))
}

/// `ImageData` → image, after checking its size.
pub fn from_image_data(data: &ImageData, name: &str, limits: &ImageLimits) -> Result<RgbImage, WebError> {
    let (w, h) = (data.width(), data.height());
    limits.check(w.into(), h.into(), name)?;
    let rgba = data.data();
    RgbImage::from_rgba(w, h, &rgba)
        .ok_or_else(|| image_err(name, format!("ImageData of {w}x{h} has the wrong length")))
}

async fn read_blob(blob: &Blob, limits: &ImageLimits) -> Result<NamedImage, WebError> {
    let name = blob.dyn_ref::<File>().map_or_else(|| "image".to_string(), |f| f.name());
    let size = blob.size();
    if size > MAX_IMAGE_FILE_BYTES {
        return Err(image_err(
            &name,
            format!("the file has {:.0} MiB, more than the 512 MiB an image may have", size / 1048576.0),
        ));
    }
    if size == 0.0 {
        return Err(WebError::from(InputError::Decode { path: name, what: "the file is empty".into() }));
    }
    let buffer = JsFuture::from(blob.array_buffer())
        .await
        .map_err(|e| WebError::js(ErrorKind::Image, &format!("{name}: cannot read the file"), &e))?;
    let bytes = Uint8Array::new(&buffer).to_vec();
    if is_png_or_jpeg(&bytes) {
        let image = decode_image(&bytes, &name, limits)?;
        return Ok(NamedImage { image, name });
    }
    drop(bytes);
    let bitmap = browser_bitmap(blob, &name).await?;
    let image = from_bitmap(&bitmap, &name, limits);
    bitmap.close();
    Ok(NamedImage { image: image?, name })
}

fn is_png_or_jpeg(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x89, b'P', b'N', b'G']) || bytes.starts_with(&[0xff, 0xd8, 0xff])
}

/// `createImageBitmap(value)` with the file's orientation, no colour conversion, straight alpha.
async fn browser_bitmap(value: &JsValue, name: &str) -> Result<ImageBitmap, WebError> {
    let opts = ImageBitmapOptions::new();
    opts.set_premultiply_alpha(PremultiplyAlpha::None);
    opts.set_color_space_conversion(ColorSpaceConversion::None);
    opts.set_image_orientation(ImageOrientation::FromImage);
    let cannot = |e: &JsValue| {
        WebError::from(InputError::Decode {
            path: name.to_string(),
            what: format!("the browser cannot decode this image ({})", js_message(e)),
        })
    };
    let promise = create_image_bitmap(value, &opts).map_err(|e| cannot(&e))?;
    let bitmap = JsFuture::from(promise).await.map_err(|e| cannot(&e))?;
    bitmap.dyn_into::<ImageBitmap>().map_err(|_| image_err(name, "createImageBitmap gave no ImageBitmap"))
}

/// An `ImageBitmap`'s RGBA through an `OffscreenCanvas`.
pub fn from_bitmap(bitmap: &ImageBitmap, name: &str, limits: &ImageLimits) -> Result<RgbImage, WebError> {
    let (w, h) = (bitmap.width(), bitmap.height());
    limits.check(w.into(), h.into(), name)?;
    let canvas_err =
        |e: &JsValue| WebError::js(ErrorKind::Image, &format!("{name}: cannot read the pixels through a canvas"), e);
    let canvas = OffscreenCanvas::new(w, h).map_err(|e| canvas_err(&e))?;
    let opts = Object::new();
    let _ = Reflect::set(&opts, &"willReadFrequently".into(), &true.into());
    let ctx = canvas
        .get_context_with_context_options("2d", &opts)
        .map_err(|e| canvas_err(&e))?
        .and_then(|c| c.dyn_into::<OffscreenCanvasRenderingContext2d>().ok())
        .ok_or_else(|| image_err(name, "this browser gives no 2D canvas context to read pixels with"))?;
    ctx.draw_image_with_image_bitmap(bitmap, 0.0, 0.0).map_err(|e| canvas_err(&e))?;
    let data = ctx.get_image_data(0.0, 0.0, f64::from(w), f64::from(h)).map_err(|e| canvas_err(&e))?;
    from_image_data(&data, name, limits)
}

/// The image as `ImageData` (RGBA; opaque where it has no alpha).
pub fn to_image_data(img: &RgbImage) -> Result<ImageData, WebError> {
    let n = img.data.len() / 3;
    let mut rgba = Vec::with_capacity(n * 4);
    for (i, px) in img.data.chunks_exact(3).enumerate() {
        let a = img.alpha.as_ref().and_then(|a| a.get(i).copied()).unwrap_or(255);
        rgba.extend_from_slice(&[px[0], px[1], px[2], a]);
    }
    image_data(&rgba, img.width, img.height)
}

/// `ImageData` over a JS copy of `rgba`. (`ImageData`'s constructor keeps the array it is given,
/// so it must not be a view of wasm memory, which is freed and moves when memory grows.)
pub fn image_data(rgba: &[u8], width: u32, height: u32) -> Result<ImageData, WebError> {
    let len =
        u32::try_from(rgba.len()).map_err(|_| WebError::new(ErrorKind::Image, "image too large for ImageData"))?;
    let array = js_sys::Uint8ClampedArray::new_with_length(len);
    array.copy_from(rgba);
    ImageData::new_with_js_u8_clamped_array_and_sh(&array, width, height)
        .map_err(|e| WebError::js(ErrorKind::Image, "cannot create ImageData", &e))
}
