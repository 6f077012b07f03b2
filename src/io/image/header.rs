//! What an image file's header says, read without decoding anything: PNG or JPEG, the declared
//! size (checked against the limits before any pixel buffer exists), and whether the samples
//! carry alpha.

use crate::io::InputError;

/// Which container the bytes are, from their magic numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Png,
    Jpeg,
}

/// What the file header says, read without decoding anything.
pub(super) struct Header {
    /// PNG or JPEG.
    pub(super) kind: Kind,
    /// Declared width in pixels.
    pub(super) width: u64,
    /// Declared height in pixels.
    pub(super) height: u64,
    /// The file's own samples include an alpha channel (PNG colour types 4 and 6).
    pub(super) has_alpha_channel: bool,
}

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];

/// An [`InputError::Decode`] naming the file.
pub(super) fn decode_err(name: &str, what: impl Into<String>) -> InputError {
    InputError::Decode { path: name.to_string(), what: what.into() }
}

/// Reads the image size from the PNG IHDR or the JPEG SOF segment.
pub(super) fn read_header(bytes: &[u8], name: &str) -> Result<Header, InputError> {
    if bytes.starts_with(&PNG_SIGNATURE) {
        // Signature, then the IHDR chunk: length (13), "IHDR", width, height, depth, colour type.
        let ihdr = bytes.get(8..26).ok_or_else(|| decode_err(name, "truncated PNG header"))?;
        if &ihdr[4..8] != b"IHDR" {
            return Err(decode_err(name, "PNG does not start with an IHDR chunk"));
        }
        let width = u32::from_be_bytes([ihdr[8], ihdr[9], ihdr[10], ihdr[11]]);
        let height = u32::from_be_bytes([ihdr[12], ihdr[13], ihdr[14], ihdr[15]]);
        let colour_type = ihdr[17];
        return Ok(Header {
            kind: Kind::Png,
            width: width.into(),
            height: height.into(),
            has_alpha_channel: colour_type == 4 || colour_type == 6,
        });
    }
    if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        let (width, height) = crate::io::jpeg::declared_size(bytes)
            .ok_or_else(|| decode_err(name, "truncated or damaged JPEG header"))?;
        return Ok(Header { kind: Kind::Jpeg, width: width.into(), height: height.into(), has_alpha_channel: false });
    }
    Err(decode_err(name, "not a PNG or JPEG file (only PNG and JPEG are supported)"))
}
