//! From coefficients to pixels: blocks inverse-transformed into each component's sample plane,
//! and output rows (upsampled, colour-converted) emitted as soon as the planes hold every sample
//! they need. A sequential file feeds blocks here as its scan decodes them, so the samples are
//! still in cache when their rows are emitted and no coefficient store is needed; a progressive
//! file, whose coefficients are complete only after its last scan, feeds them all at the end.

use super::markers::{Frame, Tables};
use super::{color, idct, upsample, Image, JpegError};

/// One component's samples after the IDCT.
struct Plane {
    data: Vec<u8>,
    stride: usize,
    dw: usize,
    dh: usize,
    hx: usize,
    vx: usize,
    quant: [u16; 64],
    /// Sample rows written so far (from the top).
    filled: usize,
    /// The upsampled row being built.
    line: Vec<u8>,
    /// Scratch for the upsampling filters.
    cols: Vec<u16>,
}

/// Planes being filled and the pixels emitted from them.
pub struct Output {
    planes: Vec<Plane>,
    space: color::Space,
    width: usize,
    height: usize,
    channels: usize,
    pixels: Vec<u8>,
    /// Output rows emitted so far.
    emitted: usize,
}

impl Output {
    /// Planes for every component of `frame`, dequantised with the tables each component's first
    /// scan latched (`quant`), colour space from the markers in `tables` (JFIF, Adobe) and the
    /// component identifiers.
    ///
    /// # Errors
    /// A component never coded, or sampling factors that are not integer ratios (libjpeg
    /// refuses them too).
    pub fn new(frame: &Frame, quant: &[Option<[u16; 64]>], tables: &Tables) -> Result<Output, JpegError> {
        let ids: Vec<u8> = frame.components.iter().map(|c| c.id).collect();
        let space = color::space(ids.len(), tables.jfif, tables.adobe_transform, &ids);
        let mut planes = Vec::with_capacity(frame.components.len());
        for (c, q) in frame.components.iter().zip(quant) {
            let quant = q.ok_or("the file ends before every colour component was coded")?;
            if !frame.max_h.is_multiple_of(c.h) || !frame.max_v.is_multiple_of(c.v) {
                return Err(format!(
                    "chroma sampling {}x{} of {}x{} is not an integer ratio",
                    c.h, c.v, frame.max_h, frame.max_v
                )
                .into());
            }
            let (hx, vx) = (frame.max_h / c.h, frame.max_v / c.v);
            let stride = c.bw * 8;
            planes.push(Plane {
                data: vec![0; stride * c.bh * 8],
                stride,
                dw: c.dw,
                dh: c.dh,
                hx,
                vx,
                quant,
                filled: 0,
                line: vec![0; c.dw * hx],
                cols: vec![0; c.dw],
            });
        }
        let channels = if space == color::Space::Gray { 1 } else { 3 };
        let (width, height) = (frame.width, frame.height);
        Ok(Output { planes, space, width, height, channels, pixels: vec![0; width * height * channels], emitted: 0 })
    }

    /// Inverse-transforms block (`bx`, `by`) of component `ci` into its plane.
    ///
    /// # Errors
    /// Coefficients past what 8-bit JPEG allows, where PIL's result depends on its CPU.
    pub fn block(&mut self, ci: usize, bx: usize, by: usize, coefs: &[i16; 64]) -> Result<(), String> {
        let p = &mut self.planes[ci];
        let at = by * 8 * p.stride + bx * 8;
        if idct::idct_block(coefs, &p.quant, &mut p.data[at..], p.stride) {
            return Ok(());
        }
        Err("corrupt data: DCT coefficients beyond the range of 8-bit JPEG (libjpeg-turbo's SIMD and C decoders differ on them)".into())
    }

    /// Records that the top `block_rows` block rows of component `ci` are complete, and emits
    /// every output row that can now be computed.
    pub fn filled(&mut self, ci: usize, block_rows: usize) {
        self.planes[ci].filled = block_rows * 8;
        self.emit_ready();
    }

    /// Emits output rows while every plane holds the sample rows they read: the row itself and,
    /// for vertical upsampling, its neighbour below (clamped to the last real row).
    fn emit_ready(&mut self) {
        let (row_bytes, n) = (self.width * self.channels, self.planes.len());
        while self.emitted < self.height {
            let y = self.emitted;
            if self.planes.iter().any(|p| (y / p.vx + 1).min(p.dh - 1) >= p.filled) {
                return;
            }
            let mut rows: [&[u8]; 4] = [&[]; 4];
            for (r, p) in rows.iter_mut().zip(self.planes.iter_mut()) {
                let view = upsample::Plane { data: &p.data, stride: p.stride, dw: p.dw, dh: p.dh };
                *r = upsample::row(&view, p.hx, p.vx, y, &mut p.line, &mut p.cols);
            }
            let out = &mut self.pixels[y * row_bytes..(y + 1) * row_bytes];
            color::convert_row(self.space, &rows[..n], out);
            self.emitted += 1;
        }
    }

    /// Whether every output row has been emitted.
    pub fn complete(&self) -> bool {
        self.emitted == self.height
    }

    /// The decoded image (every plane must be complete).
    ///
    /// # Errors
    /// Rows still missing (a scan that did not cover the image), or a size past `u32`.
    pub fn finish(self, orientation: Option<u16>) -> Result<Image, JpegError> {
        if !self.complete() {
            return Err("truncated JPEG: the image data ends before the last block row".into());
        }
        let dim = |v: usize| u32::try_from(v).map_err(|_| JpegError::from("image too large"));
        Ok(Image {
            width: dim(self.width)?,
            height: dim(self.height)?,
            gray: self.space == color::Space::Gray,
            pixels: self.pixels,
            orientation,
        })
    }
}
