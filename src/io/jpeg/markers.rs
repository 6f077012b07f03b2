//! JPEG marker segments (ITU T.81 Annex B; JFIF, Adobe and EXIF APPn): the frame, its tables,
//! scan headers and the metadata that decides colours and orientation.

use super::huffman::Table;

/// `natural[k]`: the position in the 8×8 block (row-major) of the `k`-th coefficient in zigzag
/// order.
pub const NATURAL: [usize; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21,
    28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54,
    47, 55, 62, 63,
];

/// One image component of the frame, with its coefficients.
#[derive(Debug)]
pub struct Component {
    /// Component identifier (1, 2, 3 or 'R', 'G', 'B', …).
    pub id: u8,
    /// Horizontal and vertical sampling factors (1..=4).
    pub h: usize,
    /// Vertical sampling factor.
    pub v: usize,
    /// Quantisation table index.
    pub tq: usize,
    /// Blocks per row and block rows stored (padded to whole MCUs).
    pub bw: usize,
    /// Block rows stored.
    pub bh: usize,
    /// Samples per row and rows that are real: `ceil(width · h / max_h)` (libjpeg's
    /// `downsampled_width`) and likewise for the height.
    pub dw: usize,
    /// Real rows.
    pub dh: usize,
    /// `bw · bh` blocks of 64 coefficients, zigzag order undone (row-major within the block).
    pub coefs: Vec<i16>,
    /// Per coefficient (zigzag index): the successive-approximation bit position reached, or −1
    /// before any scan sent it (libjpeg's `coef_bits`).
    pub coef_bits: [i32; 64],
}

/// The frame (SOF segment).
#[derive(Debug)]
pub struct Frame {
    /// Progressive (SOF2) rather than sequential (SOF0, SOF1).
    pub progressive: bool,
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// The components, in frame order.
    pub components: Vec<Component>,
    /// Largest sampling factors.
    pub max_h: usize,
    /// Largest vertical sampling factor.
    pub max_v: usize,
    /// MCUs per row of an interleaved scan.
    pub mcus_x: usize,
    /// MCU rows of an interleaved scan.
    pub mcus_y: usize,
}

/// A scan header (SOS): components (indices into the frame), their tables and the spectral
/// selection / successive approximation parameters.
#[derive(Debug)]
pub struct ScanHeader {
    /// (frame component index, DC table, AC table) per scan component.
    pub components: Vec<(usize, usize, usize)>,
    /// Start of spectral selection.
    pub ss: usize,
    /// End of spectral selection.
    pub se: usize,
    /// Successive approximation high bit.
    pub ah: u32,
    /// Successive approximation low bit.
    pub al: u32,
}

/// Everything the markers before and between scans set.
#[derive(Default)]
pub struct Tables {
    /// Quantisation tables in natural (row-major) order.
    pub quant: [Option<[u16; 64]>; 4],
    /// DC Huffman tables.
    pub dc: [Option<Table>; 4],
    /// AC Huffman tables.
    pub ac: [Option<Table>; 4],
    /// MCUs per restart interval (0: none).
    pub restart_interval: usize,
    /// A JFIF APP0 segment was seen.
    pub jfif: bool,
    /// The Adobe APP14 transform flag, if that segment was seen.
    pub adobe_transform: Option<u8>,
    /// The EXIF orientation (1–8), if given.
    pub orientation: Option<u16>,
}

fn be16(b: &[u8], at: usize) -> Option<usize> {
    Some(usize::from(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?])))
}

/// Parses a SOF segment body (`seg`, after the length). `Err` says what is wrong.
pub fn frame(seg: &[u8], progressive: bool) -> Result<Frame, String> {
    let bad = || "damaged frame header (SOF)".to_string();
    let precision = *seg.first().ok_or_else(bad)?;
    if precision != 8 {
        return Err(format!("{precision}-bit samples are not supported (8-bit only)"));
    }
    let height = be16(seg, 1).ok_or_else(bad)?;
    let width = be16(seg, 3).ok_or_else(bad)?;
    let n = usize::from(*seg.get(5).ok_or_else(bad)?);
    if height == 0 {
        return Err("the frame header gives no height (DNL markers are not supported)".into());
    }
    if width == 0 {
        return Err("the frame header gives a width of 0".into());
    }
    if !matches!(n, 1 | 3 | 4) {
        return Err(format!("{n} colour components are not supported (1, 3 or 4)"));
    }
    let mut raw: Vec<(u8, usize, usize, usize)> = Vec::new();
    for i in 0..n {
        let c = seg.get(6 + 3 * i..9 + 3 * i).ok_or_else(bad)?;
        let (h, v, tq) = (usize::from(c[1] >> 4), usize::from(c[1] & 15), usize::from(c[2]));
        if !(1..=4).contains(&h) || !(1..=4).contains(&v) || tq > 3 {
            return Err(format!("component {i} has sampling {h}x{v} or table {tq}: not valid"));
        }
        if raw.iter().any(|&(id, ..)| id == c[0]) {
            return Err(format!("component id {} appears twice", c[0]));
        }
        raw.push((c[0], h, v, tq));
    }
    let max_h = raw.iter().map(|c| c.1).max().unwrap_or(1);
    let max_v = raw.iter().map(|c| c.2).max().unwrap_or(1);
    let (mcus_x, mcus_y) = (width.div_ceil(8 * max_h), height.div_ceil(8 * max_v));
    let components = raw
        .into_iter()
        .map(|(id, h, v, tq)| {
            let (bw, bh) = (mcus_x * h, mcus_y * v);
            Component {
                id,
                h,
                v,
                tq,
                bw,
                bh,
                dw: (width * h).div_ceil(max_h),
                dh: (height * v).div_ceil(max_v),
                coefs: Vec::new(),
                coef_bits: [-1; 64],
            }
        })
        .collect();
    Ok(Frame { progressive, width, height, components, max_h, max_v, mcus_x, mcus_y })
}

/// Parses a DHT segment body into `tables`.
pub fn huffman_tables(mut seg: &[u8], tables: &mut Tables) -> Result<(), String> {
    while !seg.is_empty() {
        let bad = || "damaged Huffman table (DHT)".to_string();
        let tc_th = seg[0];
        let (class, id) = (tc_th >> 4, usize::from(tc_th & 15));
        if class > 1 || id > 3 {
            return Err(format!("Huffman table class {class} id {id} is not valid"));
        }
        let counts: [u8; 16] = seg.get(1..17).ok_or_else(bad)?.try_into().map_err(|_| bad())?;
        let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
        let symbols = seg.get(17..17 + total).ok_or_else(bad)?;
        let table = Table::new(&counts, symbols)
            .ok_or_else(|| "corrupt Huffman table: its code lengths are no prefix code".to_string())?;
        if class == 0 {
            tables.dc[id] = Some(table);
        } else {
            tables.ac[id] = Some(table);
        }
        seg = &seg[17 + total..];
    }
    Ok(())
}

/// Parses a DQT segment body into `tables`.
pub fn quant_tables(mut seg: &[u8], tables: &mut Tables) -> Result<(), String> {
    while !seg.is_empty() {
        let (pq, id) = (seg[0] >> 4, usize::from(seg[0] & 15));
        if id > 3 || pq > 1 {
            return Err(format!("quantisation table {id} with precision {pq} is not valid"));
        }
        let size = if pq == 0 { 64 } else { 128 };
        let body = seg.get(1..1 + size).ok_or("damaged quantisation table (DQT)")?;
        let mut q = [0u16; 64];
        for (k, &pos) in NATURAL.iter().enumerate() {
            q[pos] = if pq == 0 { u16::from(body[k]) } else { u16::from_be_bytes([body[2 * k], body[2 * k + 1]]) };
        }
        tables.quant[id] = Some(q);
        seg = &seg[1 + size..];
    }
    Ok(())
}

/// Parses a SOS header body against `frame`.
pub fn scan_header(seg: &[u8], frame: &Frame) -> Result<ScanHeader, String> {
    let bad = || "damaged scan header (SOS)".to_string();
    let n = usize::from(*seg.first().ok_or_else(bad)?);
    if n == 0 || n > 4 {
        return Err(format!("a scan of {n} components"));
    }
    let mut components: Vec<(usize, usize, usize)> = Vec::with_capacity(n);
    for i in 0..n {
        let c = seg.get(1 + 2 * i..3 + 2 * i).ok_or_else(bad)?;
        let idx = frame
            .components
            .iter()
            .position(|f| f.id == c[0])
            .ok_or_else(|| format!("scan names component {}, which the frame has not", c[0]))?;
        if components.iter().any(|&(j, ..)| j == idx) {
            return Err(format!("scan names component {} twice", c[0]));
        }
        let (td, ta) = (usize::from(c[1] >> 4), usize::from(c[1] & 15));
        if td > 3 || ta > 3 {
            return Err(format!("scan names Huffman tables {td}/{ta}"));
        }
        components.push((idx, td, ta));
    }
    let p = seg.get(1 + 2 * n..4 + 2 * n).ok_or_else(bad)?;
    let (ss, se, ah, al) = (usize::from(p[0]), usize::from(p[1]), u32::from(p[2] >> 4), u32::from(p[2] & 15));
    if n > 1 && components.iter().map(|&(i, ..)| frame.components[i].h * frame.components[i].v).sum::<usize>() > 10 {
        return Err("an interleaved scan with more than 10 blocks per MCU".into());
    }
    Ok(ScanHeader { components, ss, se, ah, al })
}

/// Reads an APPn segment for what it decides: JFIF (APP0), EXIF orientation (APP1), Adobe (APP14).
pub fn app(code: u8, seg: &[u8], tables: &mut Tables) {
    match code {
        0xe0 if seg.starts_with(b"JFIF\0") => tables.jfif = true,
        0xe1 if seg.starts_with(b"Exif\0\0") && tables.orientation.is_none() => {
            tables.orientation = exif_orientation(&seg[6..])
        }
        0xee if seg.starts_with(b"Adobe") && seg.len() >= 12 => tables.adobe_transform = Some(seg[11]),
        _ => {}
    }
}

/// The orientation tag (0x0112) of IFD0 in a TIFF-structured EXIF block; `None` if absent or
/// damaged (a damaged EXIF block is no reason to reject the pixels).
fn exif_orientation(tiff: &[u8]) -> Option<u16> {
    let le = match tiff.get(..4)? {
        [b'I', b'I', 42, 0] => true,
        [b'M', b'M', 0, 42] => false,
        _ => return None,
    };
    let u16_at = |at: usize| -> Option<u16> {
        let b = [*tiff.get(at)?, *tiff.get(at + 1)?];
        Some(if le { u16::from_le_bytes(b) } else { u16::from_be_bytes(b) })
    };
    let u32_at = |at: usize| -> Option<u32> {
        let b: [u8; 4] = tiff.get(at..at + 4)?.try_into().ok()?;
        Some(if le { u32::from_le_bytes(b) } else { u32::from_be_bytes(b) })
    };
    let ifd = usize::try_from(u32_at(4)?).ok()?;
    let count = usize::from(u16_at(ifd)?);
    for i in 0..count {
        let e = ifd.checked_add(2 + 12 * i)?;
        if u16_at(e)? == 0x0112 {
            return u16_at(e + 8).filter(|o| (1..=8).contains(o));
        }
    }
    None
}
