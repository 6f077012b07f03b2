//! The JPEG decoder against PIL (Pillow 13.0.0, libjpeg-turbo 3.2.0): every byte equal on the
//! generated files of `tools/make_jpeg_fixtures.py` (baseline and progressive; 4:4:4, 4:2:2,
//! 4:2:0; grey; CMYK; restart intervals; EXIF orientations; 1×1 to 17×3 images; sequential files
//! in several scans) and, by sha256 of the RGB bytes, on every JPEG in `../shared/data` and the
//! crafted DC-overflow files (decoded or refused as PIL does). Then the bad inputs the decoder
//! must refuse with a clear reason.

use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use sha2::{Digest, Sha256};
use tokenclip::io::image::{decode_image, read_image, ImageLimits};
use tokenclip::io::InputError;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jpeg")
}

#[test]
fn generated_jpegs_decode_to_pils_bytes() {
    let bytes = std::fs::read(dir().join("expected.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut names = st.names();
    names.sort();
    assert!(names.len() >= 41, "{} fixtures", names.len());
    let mut failures = Vec::new();
    for name in names {
        let want = st.tensor(name).unwrap();
        assert_eq!(want.dtype(), Dtype::U8);
        let (h, w) = (want.shape()[0], want.shape()[1]);
        let got = read_image(&dir().join(format!("{name}.jpg")), &ImageLimits::default()).unwrap();
        assert_eq!((got.height as usize, got.width as usize), (h, w), "{name}: size");
        let differ = got.data.iter().zip(want.data()).filter(|(a, b)| a != b).count();
        let max = got.data.iter().zip(want.data()).map(|(&a, &b)| a.abs_diff(b)).max().unwrap_or(0);
        if differ > 0 {
            failures.push(format!("{name}: {differ} of {} bytes differ, by up to {max}", got.data.len()));
        }
    }
    assert!(failures.is_empty(), "not PIL's bytes:\n{}", failures.join("\n"));
}

#[test]
fn shared_data_jpegs_decode_to_pils_bytes() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    assert!(data.is_dir(), "{} is missing: this test needs the shared data directory", data.display());
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir().join("shared.json")).unwrap()).unwrap();
    let images = json["images"].as_object().unwrap();
    assert!(images.len() >= 30, "{} shared JPEGs", images.len());
    let mut failures = Vec::new();
    for (rel, info) in images {
        let got = read_image(&data.join(rel), &ImageLimits::default()).unwrap();
        let size = (u64::from(got.width), u64::from(got.height));
        assert_eq!(size, (info["width"].as_u64().unwrap(), info["height"].as_u64().unwrap()), "{rel}");
        let sha = format!("{:x}", Sha256::digest(&got.data));
        if sha != info["sha256"].as_str().unwrap() {
            failures.push(rel.clone());
        }
    }
    assert!(failures.is_empty(), "not PIL's bytes: {failures:?}");
}

/// Hand-made files (`crafted.json`): a DC predictor that passes 2³¹ wraps in a sequential file
/// (PIL decodes it; the same bytes here) and is refused in a progressive one (as PIL refuses
/// it); coefficients beyond 8-bit JPEG's range, which PIL decodes with a result that depends on
/// its SIMD, are refused with the reason.
#[test]
fn crafted_dc_files_decode_or_are_refused_as_pil_does() {
    let json: serde_json::Value = serde_json::from_slice(&fixture("crafted.json")).unwrap();
    let images = &json["images"];
    let bytes = |name: &str| fixture(&format!("{name}.jpg"));

    let want = &images["crafted_dc_wraps_sequential"];
    let got = decode_image(&bytes("crafted_dc_wraps_sequential"), "wraps", &ImageLimits::default()).unwrap();
    let size = (u64::from(got.width), u64::from(got.height));
    assert_eq!(size, (want["width"].as_u64().unwrap(), want["height"].as_u64().unwrap()));
    assert_eq!(format!("{:x}", Sha256::digest(&got.data)), want["sha256"].as_str().unwrap(), "not PIL's bytes");

    assert!(images["crafted_dc_overflow_progressive"]["refused"].is_string(), "PIL refuses it");
    let msg = refused(&bytes("crafted_dc_overflow_progressive"), "overflow.jpg");
    assert!(msg.contains("DC coefficient out of range"), "{msg}");

    assert!(images["crafted_coefficients_out_of_range"]["sha256"].is_string(), "PIL decodes it");
    let msg = refused(&bytes("crafted_coefficients_out_of_range"), "range.jpg");
    assert!(msg.contains("beyond the range of 8-bit JPEG"), "{msg}");
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(dir().join(name)).unwrap()
}

/// The offset of the first marker `code` in `jpeg`.
fn marker(jpeg: &[u8], code: u8) -> usize {
    jpeg.windows(2).position(|w| w == [0xff, code]).unwrap()
}

fn refused(bytes: &[u8], name: &str) -> String {
    match decode_image(bytes, name, &ImageLimits::default()) {
        Err(e @ (InputError::Decode { .. } | InputError::TooLarge { .. })) => {
            let msg = e.to_string();
            assert!(msg.contains(name), "{msg}");
            msg
        }
        other => panic!("{name}: expected a decode error, got {other:?}"),
    }
}

#[test]
fn damaged_jpegs_are_refused_with_the_reason() {
    let good = fixture("big_420_q90.jpg");

    // A DHT whose code lengths over-fill the code space: 16 codes of length 1.
    let mut bad_table = good.clone();
    let dht = marker(&bad_table, 0xc4);
    bad_table[dht + 5] = 16;
    let msg = refused(&bad_table, "bad-huffman.jpg");
    assert!(msg.contains("Huffman table"), "{msg}");

    // The scan cut in the middle, with the end-of-image marker put right after.
    let sos = marker(&good, 0xda);
    let mut truncated = good[..sos + (good.len() - sos) / 2].to_vec();
    truncated.extend([0xff, 0xd9]);
    let msg = refused(&truncated, "truncated-scan.jpg");
    assert!(msg.contains("truncated"), "{msg}");

    // Cut without an end-of-image marker at all.
    let msg = refused(&good[..good.len() - 100], "cut.jpg");
    assert!(msg.contains("truncated"), "{msg}");
    let msg = refused(&good[..good.len() - 2], "no-eoi.jpg");
    assert!(msg.contains("end-of-image"), "{msg}");

    // A second scan after one that coded every component (libjpeg: "Didn't expect more than one
    // scan"; PIL refuses the file).
    let mut twice = good[..good.len() - 2].to_vec();
    twice.extend_from_slice(&good[sos..]);
    let msg = refused(&twice, "two-scans.jpg");
    assert!(msg.contains("second scan"), "{msg}");

    // A DC table coding a difference category of 16 (libjpeg refuses such a table).
    let mut dc16 = good.clone();
    let dht = marker(&dc16, 0xc4);
    assert_eq!(dc16[dht + 4] >> 4, 0, "the first table is a DC table");
    let count: usize = dc16[dht + 5..dht + 21].iter().map(|&c| usize::from(c)).sum();
    dc16[dht + 21 + count - 1] = 16;
    let msg = refused(&dc16, "dc16.jpg");
    assert!(msg.contains("category above 15"), "{msg}");

    // A restart interval of 1 MCU in a file that has no restart markers.
    let mut restart = good[..2].to_vec();
    restart.extend([0xff, 0xdd, 0, 4, 0, 1]);
    restart.extend(&good[2..]);
    let msg = refused(&restart, "restart.jpg");
    assert!(msg.contains("restart marker"), "{msg}");

    // A frame header declaring 65535 × 65535 pixels.
    let mut huge = good.clone();
    let sof = marker(&huge, 0xc0);
    huge[sof + 5..sof + 9].copy_from_slice(&[0xff, 0xff, 0xff, 0xff]);
    let msg = refused(&huge, "huge.jpg");
    assert!(msg.contains("65535"), "{msg}");

    // Arithmetic coding (SOF9) is refused, not guessed at.
    let mut arith = good.clone();
    arith[sof + 1] = 0xc9;
    let msg = refused(&arith, "arithmetic.jpg");
    assert!(msg.contains("arithmetic"), "{msg}");

    // Random bytes in place of the entropy-coded data (every 0xFF stuffed, as an encoder would).
    let mut noise = good[..sos + 14].to_vec();
    let mut x = 0x2545f491u32;
    for _ in 0..4000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        noise.push(x as u8);
        if x as u8 == 0xff {
            noise.push(0);
        }
    }
    noise.extend([0xff, 0xd9]);
    refused(&noise, "noise.jpg");
}

#[test]
fn a_progressive_file_stopped_before_full_precision_is_refused() {
    // Keep only the first scans of a progressive file (the DC and the first AC bands at reduced
    // precision): libjpeg would smooth the blocks, which this decoder does not reproduce.
    let good = fixture("big_420_progressive.jpg");
    let scans: Vec<usize> = good.windows(2).enumerate().filter(|(_, w)| *w == [0xff, 0xda]).map(|(i, _)| i).collect();
    assert!(scans.len() > 3);
    let mut partial = good[..scans[2]].to_vec();
    partial.extend([0xff, 0xd9]);
    let msg = refused(&partial, "partial.jpg");
    assert!(msg.contains("full precision"), "{msg}");
}
