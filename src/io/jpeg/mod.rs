//! A JPEG decoder that gives the very bytes PIL gives: libjpeg-turbo's defaults, which PIL
//! uses (the accurate integer IDCT `jpeg_idct_islow`, "fancy" triangle-filter chroma
//! upsampling, its fixed-point YCbCr → RGB tables), and PIL's own CMYK → RGB step.
//!
//! Baseline, extended-sequential and progressive Huffman-coded 8-bit files with 1, 3 or 4
//! components and any integer sampling ratios. Refused with a reason, never approximated:
//! lossless, hierarchical and arithmetic-coded files, 12-bit samples, damaged or truncated data
//! (libjpeg would fill in grey and warn; PIL then reports a truncated file), and progressive
//! files whose scans stop before full precision (libjpeg smooths such blocks).
//!
//! Pure Rust, so the browser build decodes exactly as the CLI does.

mod color;
mod huffman;
mod idct;
mod markers;
mod scan;
mod upsample;

use markers::{Frame, Tables};

/// A decoded JPEG: `width · height` pixels, RGB (3 bytes) or grey (1 byte) each.
#[derive(Debug)]
pub struct Image {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// One component (grey); the pixels are then 1 byte each.
    pub gray: bool,
    /// Pixels, row-major.
    pub pixels: Vec<u8>,
    /// The EXIF orientation (1–8), not applied.
    pub orientation: Option<u16>,
}

/// Why a file cannot be decoded exactly.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct JpegError(String);

impl From<String> for JpegError {
    fn from(s: String) -> Self {
        JpegError(s)
    }
}

impl From<&str> for JpegError {
    fn from(s: &str) -> Self {
        JpegError(s.to_string())
    }
}

/// The next marker at or after `pos`: its code and the offset just after it. Bytes that are no
/// marker (garbage, or the tail of entropy-coded data) are skipped, as libjpeg skips them.
fn next_marker(data: &[u8], mut pos: usize) -> Option<(u8, usize)> {
    loop {
        pos += data.get(pos..)?.iter().position(|&b| b == 0xff)?;
        while *data.get(pos)? == 0xff {
            pos += 1;
        }
        let code = data[pos];
        pos += 1;
        if code != 0 {
            return Some((code, pos));
        }
    }
}

/// Decodes a JPEG file held in memory. The caller has checked the size the (first and only)
/// frame header declares.
///
/// # Errors
/// A file that is not a JPEG this decoder reproduces exactly, saying why.
pub fn decode(data: &[u8]) -> Result<Image, JpegError> {
    if !data.starts_with(&[0xff, 0xd8]) {
        return Err("not a JPEG file (no start-of-image marker)".into());
    }
    let mut tables = Tables::default();
    let mut frame: Option<Frame> = None;
    // Quantisation tables as each component's first scan found them (libjpeg latches them).
    let mut latched: Vec<Option<[u16; 64]>> = Vec::new();
    let mut pos = 2;
    loop {
        let Some((code, after)) = next_marker(data, pos) else {
            return Err("truncated JPEG (no end-of-image marker after the image data)".into());
        };
        pos = after;
        match code {
            0xd9 => break,
            0xd0..=0xd7 | 0x01 => continue,
            0xd8 => return Err("damaged JPEG: a second start-of-image marker".into()),
            _ => {}
        }
        let len = data.get(pos..pos + 2).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])));
        let seg = match len {
            Some(len) if len >= 2 => {
                data.get(pos + 2..pos + len).ok_or("truncated JPEG (a marker segment runs past the end)")?
            }
            _ => return Err("truncated or damaged JPEG marker segment".into()),
        };
        pos += seg.len() + 2;
        match code {
            0xc0..=0xc2 => {
                if frame.is_some() {
                    return Err("a JPEG with several frames is not supported".into());
                }
                let f = markers::frame(seg, code == 0xc2)?;
                latched = vec![None; f.components.len()];
                frame = Some(f);
            }
            0xc3 | 0xc5..=0xc7 | 0xcb | 0xcd..=0xcf => {
                return Err("lossless or hierarchical JPEG is not supported (baseline and progressive only)".into())
            }
            0xc9 | 0xca => return Err("arithmetic-coded JPEG is not supported (Huffman-coded only)".into()),
            0xc4 => markers::huffman_tables(seg, &mut tables)?,
            0xdb => markers::quant_tables(seg, &mut tables)?,
            0xdd => {
                let b = seg.get(..2).ok_or("damaged restart interval (DRI)")?;
                tables.restart_interval = usize::from(u16::from_be_bytes([b[0], b[1]]));
            }
            0xda => {
                let f = frame.as_mut().ok_or("damaged JPEG: a scan before the frame header")?;
                let header = markers::scan_header(seg, f)?;
                for &(ci, ..) in &header.components {
                    if latched[ci].is_none() {
                        let tq = f.components[ci].tq;
                        latched[ci] =
                            Some(tables.quant[tq].ok_or_else(|| format!("quantisation table {tq} was never defined"))?);
                    }
                }
                pos += scan::decode_scan(f, &tables, &header, &data[pos..])?;
            }
            0xe0..=0xef => markers::app(code, seg, &mut tables),
            _ => {}
        }
    }
    let frame = frame.ok_or("damaged JPEG: no frame header before the end of the image")?;
    reconstruct(frame, &latched, &tables)
}

/// IDCT, upsampling and colour conversion of the decoded coefficients.
fn reconstruct(frame: Frame, latched: &[Option<[u16; 64]>], tables: &Tables) -> Result<Image, JpegError> {
    let (width, height) = (frame.width, frame.height);
    let ids: Vec<u8> = frame.components.iter().map(|c| c.id).collect();
    let space = color::space(ids.len(), tables.jfif, tables.adobe_transform, &ids);
    let mut planes = Vec::with_capacity(frame.components.len());
    for (c, quant) in frame.components.into_iter().zip(latched) {
        let quant = quant.as_ref().ok_or("the file ends before every colour component was coded")?;
        if frame.progressive && c.coef_bits[..10].iter().any(|&b| b != 0) {
            return Err("a progressive JPEG whose scans stop before full precision (libjpeg smooths such blocks): not supported".into());
        }
        if !frame.max_h.is_multiple_of(c.h) || !frame.max_v.is_multiple_of(c.v) {
            return Err(format!(
                "chroma sampling {}x{} of {}x{} is not an integer ratio",
                c.h, c.v, frame.max_h, frame.max_v
            )
            .into());
        }
        let stride = c.bw * 8;
        let mut plane = vec![0u8; stride * c.bh * 8];
        for (b, block) in c.coefs.as_chunks::<64>().0.iter().enumerate() {
            let (bx, by) = (b % c.bw, b / c.bw);
            idct::idct_block(block, quant, &mut plane[by * 8 * stride + bx * 8..], stride);
        }
        planes.push((plane, stride, c.dw, c.dh, frame.max_h / c.h, frame.max_v / c.v));
    }
    // Upsampling and colour conversion row by row, as libjpeg does.
    let channels = if space == color::Space::Gray { 1 } else { 3 };
    let mut pixels = vec![0u8; width * height * channels];
    let views: Vec<(upsample::Plane, usize, usize)> = planes
        .iter()
        .map(|(data, stride, dw, dh, hx, vx)| (upsample::Plane { data, stride: *stride, dw: *dw, dh: *dh }, *hx, *vx))
        .collect();
    let mut lines: Vec<Vec<u8>> = views.iter().map(|(p, hx, _)| vec![0u8; p.dw * hx]).collect();
    for (y, out) in pixels.chunks_exact_mut(width * channels).enumerate() {
        let rows: Vec<&[u8]> =
            views.iter().zip(lines.iter_mut()).map(|((p, hx, vx), line)| upsample::row(p, *hx, *vx, y, line)).collect();
        color::convert_row(space, &rows, out);
    }
    let dim = |v: usize| u32::try_from(v).map_err(|_| JpegError::from("image too large"));
    Ok(Image {
        width: dim(width)?,
        height: dim(height)?,
        gray: space == color::Space::Gray,
        pixels,
        orientation: tables.orientation,
    })
}
