//! JPEG decoding speed: tokenclip's PIL-exact decoder against zune-jpeg (what tokenclip used
//! before, through `image`; timed bare and through `image` as tokenclip called it), on every
//! JPEG in ../shared/data and the generated fixtures, the decoders alternating file by file (in
//! rotating order) so load on a shared machine hits them alike.
//!
//! `cargo bench --bench jpeg_decode [-- ROUNDS] [--only tokenclip|zune|image]` (default 5
//! rounds); prints megapixels per second for each decoder and the ratio. `--only` runs one
//! decoder alone, for a profiler.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use zune_jpeg::zune_core::bytestream::ZCursor;
use zune_jpeg::zune_core::colorspace::ColorSpace;
use zune_jpeg::zune_core::options::DecoderOptions;

fn jpegs(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            jpegs(&p, out);
        } else if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg"))
            // The hand-made DC-overflow files test refusals, not speed.
            && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("crafted_"))
        {
            out.push(p);
        }
    }
}

fn ours(data: &[u8]) -> usize {
    tokenclip::io::jpeg::decode(data).map(|i| i.width as usize * i.height as usize).unwrap_or(0)
}

fn zune(data: &[u8]) -> usize {
    let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut d = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(data), options);
    d.decode().map(|p| p.len()).unwrap_or(0)
}

/// The path tokenclip decoded JPEGs by before its own decoder: `image` (zune-jpeg inside) to a
/// `DynamicImage`, then its RGB bytes.
fn via_image(data: &[u8]) -> usize {
    use image::{DynamicImage, ImageFormat, ImageReader};
    let mut r = ImageReader::new(std::io::Cursor::new(data));
    r.set_format(ImageFormat::Jpeg);
    match r.decode() {
        Ok(DynamicImage::ImageRgb8(i)) => i.into_raw().len(),
        Ok(other) => other.into_rgb8().into_raw().len(),
        Err(_) => 0,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rounds: u32 = args.iter().find_map(|a| a.parse().ok()).unwrap_or(5);
    let only = args.iter().position(|a| a == "--only").and_then(|i| args.get(i + 1)).map(|name| {
        ["tokenclip", "zune", "image"].iter().position(|n| n == name).unwrap_or_else(|| panic!("--only {name}?"))
    });
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (label, dir) in
        [("../shared/data", root.join("../shared/data")), ("tests/fixtures/jpeg", root.join("tests/fixtures/jpeg"))]
    {
        let mut files = Vec::new();
        jpegs(&dir, &mut files);
        let data: Vec<Vec<u8>> = files.iter().filter_map(|p| std::fs::read(p).ok()).collect();
        if data.is_empty() {
            println!("{label}: no JPEGs found");
            continue;
        }
        // Pixels per round, counted once so that `--only` runs report them too.
        let pixels: usize = data.iter().map(|d| ours(d)).sum::<usize>() * rounds as usize;
        let (mut t_ours, mut t_zune, mut t_image) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        for round in 0..rounds {
            for (i, d) in data.iter().enumerate() {
                // The order rotates file by file: whoever runs first meets fresh (unfaulted) memory.
                for k in 0..3 {
                    let which = (i + round as usize + k) % 3;
                    if only.is_some_and(|o| o != which) {
                        continue;
                    }
                    let t = Instant::now();
                    match which {
                        0 => {
                            std::hint::black_box(ours(d));
                            t_ours += t.elapsed();
                        }
                        1 => {
                            std::hint::black_box(zune(d));
                            t_zune += t.elapsed();
                        }
                        _ => {
                            std::hint::black_box(via_image(d));
                            t_image += t.elapsed();
                        }
                    }
                }
            }
        }
        let mp = pixels as f64 / 1e6;
        let secs = |t: Duration| t.as_secs_f64();
        if let Some(o) = only {
            let (name, t) = [("tokenclip", t_ours), ("zune-jpeg", t_zune), ("image+zune-jpeg", t_image)][o];
            println!("{label}: {} files, {mp:.1} MP: {name} alone {:.1} MP/s", data.len(), mp / secs(t));
            continue;
        }
        println!(
            "{label}: {} files, {:.1} MP per decoder: tokenclip {:.1} MP/s, zune-jpeg {:.1} MP/s, image+zune-jpeg (before) {:.1} MP/s; \
             tokenclip's time / zune-jpeg's {:.2}x, / image+zune-jpeg's {:.2}x",
            data.len(),
            mp,
            mp / secs(t_ours),
            mp / secs(t_zune),
            mp / secs(t_image),
            secs(t_ours) / secs(t_zune),
            secs(t_ours) / secs(t_image)
        );
    }
}
