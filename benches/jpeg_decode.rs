//! JPEG decoding speed: tokenclip's PIL-exact decoder against zune-jpeg (what tokenclip used
//! before, through `image`), on every JPEG in ../shared/data and the generated fixtures,
//! alternating the two decoders so load on a shared machine hits both alike.
//!
//! `cargo bench --bench jpeg_decode [-- ROUNDS]` (default 5 rounds); prints megapixels per
//! second for each decoder and the ratio.

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
        } else if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("jpg") || e.eq_ignore_ascii_case("jpeg")) {
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

fn main() {
    let rounds: u32 = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(5);
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
        let mut pixels = 0usize;
        let (mut t_ours, mut t_zune) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..rounds {
            for d in &data {
                let t = Instant::now();
                let n = ours(d);
                t_ours += t.elapsed();
                let t = Instant::now();
                std::hint::black_box(zune(d));
                t_zune += t.elapsed();
                pixels += n;
            }
        }
        let mp = pixels as f64 / 1e6;
        println!(
            "{label}: {} files, {:.1} MP decoded per decoder: tokenclip {:.1} MP/s ({:.3} s), zune-jpeg {:.1} MP/s ({:.3} s), tokenclip/zune time {:.2}x",
            data.len(),
            mp,
            mp / t_ours.as_secs_f64(),
            t_ours.as_secs_f64(),
            mp / t_zune.as_secs_f64(),
            t_zune.as_secs_f64(),
            t_ours.as_secs_f64() / t_zune.as_secs_f64()
        );
    }
}
