//! Any bytes through `decode_image` (PNG and JPEG headers, the size limits, the JPEG decoder,
//! EXIF orientation): an error is fine, a panic, hang or runaway allocation is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenclip::io::image::{decode_image, ImageLimits};

fuzz_target!(|data: &[u8]| {
    // Limits small enough that no accepted image costs more than a few MB.
    let limits = ImageLimits { max_side: 4096, max_pixels: 1 << 20 };
    let _ = decode_image(data, "fuzz", &limits);
});
