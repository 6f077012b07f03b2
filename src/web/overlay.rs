//! Image helpers exported beside the detector: decoding as `detect` sees an image, the CLI's
//! overlay, PNG encoding.

use js_sys::{Float32Array, Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::io::image::{ImageLimits, RgbImage};
use crate::io::overlay::{encode_png, render_overlay, OverlayOptions};

use super::error::WebError;
use super::{image, install_panic_hook};

/// Decodes an image the way `detect` does (PNG and JPEG by the CLI's decoder, EXIF orientation
/// applied; other formats by the browser) into `ImageData` (straight alpha).
///
/// # Errors
/// `image` or `argument`, as `detect`.
#[wasm_bindgen(js_name = decodeImage)]
pub async fn decode_image(
    #[wasm_bindgen(unchecked_param_type = "ImageSource")] image: JsValue,
) -> Result<web_sys::ImageData, JsValue> {
    install_panic_hook();
    let named = image::read(&image, &ImageLimits::default()).await?;
    Ok(image::to_image_data(&named.image)?)
}

/// The heat map of `detection` over `image`, exactly as `tokenclip detect` draws
/// `NAME.overlay.png`: the map resized bilinearly to the image, jet colours over [0, mapRange],
/// blended at `opacity`, outlined at `threshold`, with the colour bar unless `colorBar: false`.
///
/// # Errors
/// `argument` for a detection object without a matching `map`, or options out of range; `image`
/// for an image too large.
#[wasm_bindgen(js_name = renderOverlay)]
pub fn render_overlay_js(
    image: &web_sys::ImageData,
    #[wasm_bindgen(unchecked_param_type = "Detection")] detection: &JsValue,
    #[wasm_bindgen(unchecked_optional_param_type = "OverlayOptions")] options: Option<Object>,
) -> Result<web_sys::ImageData, JsValue> {
    install_panic_hook();
    Ok(overlay(image, detection, options.as_ref())?)
}

fn overlay(
    image: &web_sys::ImageData,
    detection: &JsValue,
    options: Option<&Object>,
) -> Result<web_sys::ImageData, WebError> {
    let img = image::from_image_data(image, "ImageData", &ImageLimits::default())?;
    let field = |o: &JsValue, k: &str| Reflect::get(o, &k.into()).unwrap_or(JsValue::UNDEFINED);
    let map = field(detection, "map")
        .dyn_into::<Float32Array>()
        .map_err(|_| WebError::argument("the detection has no Float32Array `map`"))?
        .to_vec();
    let dim = |k: &str| field(detection, k).as_f64().filter(|v| v.fract() == 0.0 && *v >= 1.0).map(|v| v as usize);
    let (Some(w), Some(h)) = (dim("width"), dim("height")) else {
        return Err(WebError::argument("the detection needs whole-number `width` and `height`"));
    };
    // `mapRange` (layers plus a few-shot weight) where the detection has it, else `layers`.
    let range = field(detection, "mapRange").as_f64().filter(|r| r.is_finite() && *r > 0.0);
    let top = range.map_or_else(|| dim("layers").unwrap_or(1) as f32, |r| r as f32);
    let mut opts = OverlayOptions::default().with_range(0.0, top);
    if let Some(o) = options {
        let o: &JsValue = o.as_ref();
        let opacity = field(o, "opacity");
        if !opacity.is_undefined() {
            let a = opacity.as_f64().filter(|a| (0.0..=1.0).contains(a));
            opts = opts.with_opacity(a.ok_or_else(|| WebError::argument("opacity must be a number in [0, 1]"))? as f32);
        }
        let threshold = field(o, "threshold");
        if !(threshold.is_undefined() || threshold.is_null()) {
            let t = threshold.as_f64().filter(|t| t.is_finite());
            opts = opts
                .with_outline(Some(t.ok_or_else(|| WebError::argument("threshold must be a finite number"))? as f32));
        }
        if let Some(bar) = field(o, "colorBar").as_bool() {
            opts = opts.with_colour_bar(bar);
        }
    }
    let out = render_overlay(&img, &map, w, h, &opts).map_err(|e| WebError::argument(e.to_string()))?;
    image::to_image_data(&out)
}

/// PNG bytes of an image (RGB when every pixel is opaque, else RGBA), as `tokenclip detect`
/// writes them.
///
/// # Errors
/// `image` for an image too large.
#[wasm_bindgen(js_name = encodePng)]
pub fn encode_png_js(image: &web_sys::ImageData) -> Result<Uint8Array, JsValue> {
    install_panic_hook();
    let img: RgbImage = image::from_image_data(image, "ImageData", &ImageLimits::default())?;
    let png = encode_png(&img).map_err(WebError::from)?;
    Ok(Uint8Array::from(&png[..]))
}
