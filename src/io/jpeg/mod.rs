//! A JPEG decoder that gives the very bytes PIL gives: libjpeg-turbo's defaults, which PIL
//! uses (the accurate integer IDCT `jpeg_idct_islow`, "fancy" triangle-filter chroma
//! upsampling, its fixed-point YCbCr → RGB tables), and PIL's own CMYK → RGB step.
//!
//! Baseline, extended-sequential (in one scan or several) and progressive Huffman-coded 8-bit
//! files with 1, 3 or 4 components and any integer sampling ratios. A sequential file whose
//! first scan holds every component is reconstructed as it decodes (`output`); the others
//! after their last scan. Refused with a reason, never approximated: lossless, hierarchical and
//! arithmetic-coded files, 12-bit samples, damaged or truncated data (libjpeg would fill in
//! grey and warn; PIL then reports a truncated file), progressive files whose scans stop
//! before full precision (libjpeg smooths such blocks), and coefficients beyond 8-bit JPEG's
//! range (where libjpeg-turbo's SIMD and C IDCTs, and so PIL on different CPUs, disagree).
//!
//! Pure Rust, so the browser build decodes exactly as the CLI does.

mod color;
mod huffman;
mod idct;
mod idct_pass;
mod markers;
mod output;
mod progressive;
mod scan;
mod upsample;

use markers::{Frame, Tables};
use output::Output;

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

/// A marker and its segment's body (empty for the markers that have none: SOI, EOI, RSTn, TEM).
struct Segment<'a> {
    code: u8,
    body: &'a [u8],
    /// The offset just after the segment.
    end: usize,
}

/// The marker at or after `pos` and its segment; `None` if no marker follows.
fn segment(data: &[u8], pos: usize) -> Result<Option<Segment<'_>>, JpegError> {
    let Some((code, after)) = next_marker(data, pos) else { return Ok(None) };
    if matches!(code, 0xd0..=0xd9 | 0x01) {
        return Ok(Some(Segment { code, body: &[], end: after }));
    }
    let len = data.get(after..after + 2).map(|b| usize::from(u16::from_be_bytes([b[0], b[1]])));
    let body = match len {
        Some(len) if len >= 2 => {
            data.get(after + 2..after + len).ok_or("truncated JPEG (a marker segment runs past the end)")?
        }
        _ => return Err("truncated or damaged JPEG marker segment".into()),
    };
    Ok(Some(Segment { code, body, end: after + 2 + body.len() }))
}

/// The (width, height) the frame header declares, read without decoding anything, so the
/// caller can check it against its limits first; `None` if the markers end, break, or reach a
/// scan or the end of the image before a frame header.
pub fn declared_size(data: &[u8]) -> Option<(u16, u16)> {
    if !data.starts_with(&[0xff, 0xd8]) {
        return None;
    }
    let mut pos = 2;
    loop {
        let s = segment(data, pos).ok()??;
        match s.code {
            0xc4 | 0xc8 | 0xcc => {}
            0xc0..=0xcf => {
                let b = s.body.get(..5)?;
                return Some((u16::from_be_bytes([b[3], b[4]]), u16::from_be_bytes([b[1], b[2]])));
            }
            0xd9 | 0xda => return None,
            _ => {}
        }
        pos = s.end;
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
    // A sequential file whose first scan holds every component is reconstructed as it decodes.
    let mut streamed: Option<Output> = None;
    let mut pos = 2;
    loop {
        let Some(Segment { code, body: seg, end }) = segment(data, pos)? else {
            return Err("truncated JPEG (no end-of-image marker after the image data)".into());
        };
        pos = end;
        match code {
            0xd9 => break,
            0xd0..=0xd7 | 0x01 => continue,
            0xd8 => return Err("damaged JPEG: a second start-of-image marker".into()),
            _ => {}
        }
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
                if streamed.is_some() {
                    // libjpeg: "Didn't expect more than one scan" (JERR_EOI_EXPECTED).
                    return Err("damaged JPEG: a second scan after a scan of every component".into());
                }
                let header = markers::scan_header(seg, f)?;
                let first = latched.iter().all(Option::is_none);
                for &(ci, ..) in &header.components {
                    if latched[ci].is_none() {
                        let tq = f.components[ci].tq;
                        latched[ci] =
                            Some(tables.quant[tq].ok_or_else(|| format!("quantisation table {tq} was never defined"))?);
                    }
                }
                if first && !f.progressive && header.components.len() == f.components.len() {
                    streamed = Some(Output::new(f, &latched, &tables)?);
                }
                pos += scan::decode_scan(f, &tables, &header, &data[pos..], streamed.as_mut())?;
            }
            0xe0..=0xef => markers::app(code, seg, &mut tables),
            _ => {}
        }
    }
    let frame = frame.ok_or("damaged JPEG: no frame header before the end of the image")?;
    match streamed {
        Some(out) => out.finish(tables.orientation),
        None => reconstruct(&frame, &latched, &tables),
    }
}

/// IDCT, upsampling and colour conversion of a progressive or multi-scan file's coefficients.
fn reconstruct(frame: &Frame, latched: &[Option<[u16; 64]>], tables: &Tables) -> Result<Image, JpegError> {
    if frame.progressive && frame.components.iter().any(|c| c.coef_bits[..10].iter().any(|&b| b != 0)) {
        return Err(
            "a progressive JPEG whose scans stop before full precision (libjpeg smooths such blocks): not supported"
                .into(),
        );
    }
    let mut out = Output::new(frame, latched, tables)?;
    for (ci, c) in frame.components.iter().enumerate() {
        for (b, block) in c.coefs.as_chunks::<64>().0.iter().enumerate() {
            out.block(ci, b % c.bw, b / c.bw, block)?;
        }
    }
    for (ci, c) in frame.components.iter().enumerate() {
        out.filled(ci, c.bh);
    }
    out.finish(tables.orientation)
}
