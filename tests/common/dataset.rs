//! Synthetic anomaly-detection data for the eval and train tests: textured images with drawn
//! defects and their masks.

/// A deterministic texture (stripes + hashed noise, tinted per class) with, when `defect` is set,
/// a filled ellipse in a contrasting colour; returns the image and the ellipse's mask.
pub fn textured(
    w: u32,
    h: u32,
    seed: u32,
    defect: Option<(f32, f32, f32, f32)>,
) -> (image::RgbImage, image::GrayImage) {
    let mut mask = image::GrayImage::new(w, h);
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        let n = (x.wrapping_mul(73_856_093) ^ y.wrapping_mul(19_349_663) ^ seed.wrapping_mul(83_492_791)) % 41;
        let stripe = (((x + 2 * y + seed) as f32 * 0.7).sin() * 40.0) as i32;
        let base = (120 + stripe + n as i32) as u8;
        image::Rgb([base, base.saturating_add((seed * 7 % 30) as u8), base.saturating_sub(20)])
    });
    let mut img = img;
    if let Some((cx, cy, rx, ry)) = defect {
        for y in 0..h {
            for x in 0..w {
                let (dx, dy) = ((x as f32 - cx) / rx, (y as f32 - cy) / ry);
                if dx * dx + dy * dy <= 1.0 {
                    img.put_pixel(x, y, image::Rgb([250, 30, 200]));
                    mask.put_pixel(x, y, image::Luma([255]));
                }
            }
        }
    }
    (img, mask)
}
