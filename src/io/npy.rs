//! NumPy `.npy` files of f32 (`tokenclip detect --save-maps` writes `NAME.map.npy`, H×W).
//!
//! The format (NumPy's `numpy.lib.format`): the magic `\x93NUMPY`, a major and minor version byte,
//! the header length (u16 little-endian in version 1, u32 in versions 2 and 3), then an ASCII
//! Python dict literal `{'descr': '<f4', 'fortran_order': False, 'shape': (H, W), }` padded with
//! spaces and ended by `\n` so that the data starts at a multiple of 64 bytes, then the raw
//! little-endian data in C order. [`npy_f32`] writes exactly the bytes `numpy.save` writes,
//! including the spare spaces NumPy leaves after the dict so the first axis can grow in place.

use crate::io::InputError;

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// The data starts at a multiple of this (NumPy's `ARRAY_ALIGN`).
const ALIGN: usize = 64;
/// NumPy reserves room for a first dimension of this many digits (`GROWTH_AXIS_MAX_DIGITS`).
const GROWTH_DIGITS: usize = 21;
/// What every error from [`read_npy_f32`] names as its source.
const SOURCE: &str = "npy data";

/// The bytes of a `.npy` file holding `data` (f32, dtype `<f4`) with `shape`, in C order, as
/// `numpy.save` writes them (format version 1.0, or 2.0 if the header outgrows 65535 bytes).
///
/// # Shapes
/// `data.len()` must equal the product of `shape` (an empty `shape` is a 0-d array of one
/// value); this is the caller's invariant and is only checked in debug builds.
pub fn npy_f32(data: &[f32], shape: &[usize]) -> Vec<u8> {
    debug_assert_eq!(shape.iter().product::<usize>(), data.len(), "npy_f32: shape does not match the data");
    let mut out = header_bytes(shape);
    out.reserve(data.len() * 4);
    out.extend(data.iter().flat_map(|v| v.to_le_bytes()));
    out
}

/// Python's `repr` of a tuple of ints: `()`, `(5,)`, `(2, 3)`.
fn shape_repr(shape: &[usize]) -> String {
    match shape {
        [] => "()".into(),
        [n] => format!("({n},)"),
        _ => format!("({})", shape.iter().map(usize::to_string).collect::<Vec<_>>().join(", ")),
    }
}

/// Magic, version, length and padded dict: everything before the data.
fn header_bytes(shape: &[usize]) -> Vec<u8> {
    let mut dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {}, }}", shape_repr(shape));
    if let Some(first) = shape.first() {
        dict.push_str(&" ".repeat(GROWTH_DIGITS.saturating_sub(first.to_string().len())));
    }
    // Version 1 stores the header length in 2 bytes; NumPy moves to version 2 (4 bytes) only
    // when it does not fit.
    let (mut major, mut prefix) = (1u8, MAGIC.len() + 4);
    let mut pad = ALIGN - (prefix + dict.len() + 1) % ALIGN;
    if dict.len() + pad + 1 > usize::from(u16::MAX) {
        (major, prefix) = (2, MAGIC.len() + 6);
        pad = ALIGN - (prefix + dict.len() + 1) % ALIGN;
    }
    let header_len = dict.len() + pad + 1;
    let mut out = Vec::with_capacity(prefix + header_len);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[major, 0]);
    if major == 1 {
        out.extend_from_slice(&(header_len as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(header_len as u32).to_le_bytes());
    }
    out.extend_from_slice(dict.as_bytes());
    out.extend(std::iter::repeat_n(b' ', pad));
    out.push(b'\n');
    out
}

fn bad(what: impl Into<String>) -> InputError {
    InputError::Invalid { path: SOURCE.into(), what: what.into() }
}

/// Reads a `.npy` file of f32 values: the data and its shape.
///
/// Accepts format versions 1, 2 and 3 whose dtype is `<f4` (little-endian f32) in C order, with
/// exactly as many data bytes as the shape needs.
///
/// # Errors
/// [`InputError::Invalid`] naming what is wrong: not a `.npy` file, a truncated or malformed
/// header, another dtype, Fortran order, or a data length that does not match the shape.
pub fn read_npy_f32(bytes: &[u8]) -> Result<(Vec<f32>, Vec<usize>), InputError> {
    let (header, data) = split_header(bytes)?;
    let (descr, fortran, shape) = parse_header(header)?;
    if descr != "<f4" {
        return Err(bad(format!("dtype is '{descr}', only '<f4' (little-endian float32) is supported")));
    }
    if fortran {
        return Err(bad("array is in Fortran order, only C order is supported"));
    }
    let count = shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).ok_or_else(|| bad("shape is too large"))?;
    let needed = count.checked_mul(4).ok_or_else(|| bad("shape is too large"))?;
    if data.len() != needed {
        return Err(bad(format!("shape {shape:?} needs {needed} data bytes, the file has {}", data.len())));
    }
    let values = data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Ok((values, shape))
}

/// The header dict's text and the data after it.
fn split_header(bytes: &[u8]) -> Result<(&str, &[u8]), InputError> {
    if !bytes.starts_with(MAGIC) {
        return Err(bad("not a .npy file (no \\x93NUMPY magic)"));
    }
    let (major, minor) = match bytes.get(6..8) {
        Some(&[major, minor]) => (major, minor),
        _ => return Err(bad("truncated header")),
    };
    let (len, start): (Option<usize>, usize) = match major {
        1 => (bytes.get(8..10).map(|b| usize::from(u16::from_le_bytes([b[0], b[1]]))), 10),
        2 | 3 => {
            (bytes.get(8..12).and_then(|b| usize::try_from(u32::from_le_bytes([b[0], b[1], b[2], b[3]])).ok()), 12)
        }
        _ => return Err(bad(format!("unsupported format version {major}.{minor}"))),
    };
    let end =
        len.and_then(|l| start.checked_add(l)).filter(|&e| e <= bytes.len()).ok_or_else(|| bad("truncated header"))?;
    let text = std::str::from_utf8(&bytes[start..end]).map_err(|_| bad("header is not text"))?;
    Ok((text, &bytes[end..]))
}

/// `descr`, `fortran_order` and `shape` from the header's dict literal.
fn parse_header(text: &str) -> Result<(String, bool, Vec<usize>), InputError> {
    let mut p = DictParser { s: text.as_bytes(), i: 0 };
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    p.expect(b'{')?;
    while !p.eat(b'}') {
        let key = p.string()?;
        p.expect(b':')?;
        match key.as_str() {
            "descr" => descr = Some(p.string()?),
            "fortran_order" => fortran = Some(p.boolean()?),
            "shape" => shape = Some(p.tuple()?),
            other => return Err(bad(format!("unexpected header key '{other}'"))),
        }
        if !p.eat(b',') {
            p.expect(b'}')?;
            break;
        }
    }
    match (descr, fortran, shape) {
        (Some(d), Some(f), Some(s)) => Ok((d, f, s)),
        _ => Err(bad("header lacks 'descr', 'fortran_order' or 'shape'")),
    }
}

/// Just enough of a Python literal parser for the header dict.
struct DictParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl DictParser<'_> {
    fn peek(&mut self) -> Option<u8> {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, c: u8) -> bool {
        let hit = self.peek() == Some(c);
        self.i += usize::from(hit);
        hit
    }

    fn expect(&mut self, c: u8) -> Result<(), InputError> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(bad(format!("malformed header: expected '{}' at byte {}", c as char, self.i)))
        }
    }

    fn string(&mut self) -> Result<String, InputError> {
        let quote = self
            .peek()
            .filter(|&q| q == b'\'' || q == b'"')
            .ok_or_else(|| bad("malformed header: expected a string"))?;
        let start = self.i + 1;
        let len = self.s[start..]
            .iter()
            .position(|&c| c == quote)
            .ok_or_else(|| bad("malformed header: unterminated string"))?;
        self.i = start + len + 1;
        Ok(String::from_utf8_lossy(&self.s[start..start + len]).into_owned())
    }

    fn boolean(&mut self) -> Result<bool, InputError> {
        self.peek();
        for (word, value) in [(&b"True"[..], true), (&b"False"[..], false)] {
            if self.s[self.i..].starts_with(word) {
                self.i += word.len();
                return Ok(value);
            }
        }
        Err(bad("malformed header: 'fortran_order' is not True or False"))
    }

    fn tuple(&mut self) -> Result<Vec<usize>, InputError> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        while !self.eat(b')') {
            self.peek();
            let digits = self.s[self.i..].iter().take_while(|c| c.is_ascii_digit()).count();
            let text = std::str::from_utf8(&self.s[self.i..self.i + digits]).unwrap_or_default();
            dims.push(text.parse().map_err(|_| bad("malformed header: 'shape' is not a tuple of sizes"))?);
            self.i += digits;
            self.eat(b'L'); // Python 2 long literals, as very old NumPy wrote them.
            if !self.eat(b',') {
                self.expect(b')')?;
                break;
            }
        }
        Ok(dims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `numpy.save` writes before the data: the dict, then spaces up to `header_len - 1`.
    fn numpy_header(dict: &str, header_len: u16) -> Vec<u8> {
        let mut v = b"\x93NUMPY\x01\x00".to_vec();
        v.extend_from_slice(&header_len.to_le_bytes());
        v.extend_from_slice(dict.as_bytes());
        v.resize(10 + usize::from(header_len) - 1, b' ');
        v.push(b'\n');
        v
    }

    #[test]
    fn npy_f32_matches_numpy_save_byte_for_byte() {
        // `np.save(f, np.arange(6, dtype='<f4').reshape(2, 3))`: 152 bytes, header length 118.
        let data: Vec<f32> = (0..6).map(|i| i as f32).collect();
        let mut want = numpy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 118);
        want.extend(data.iter().flat_map(|v| v.to_le_bytes()));
        assert_eq!(npy_f32(&data, &[2, 3]), want);
        assert_eq!(want.len(), 152);
    }

    #[test]
    fn npy_headers_match_numpy_for_edge_shapes() {
        // Header lengths numpy 2.4 gives these shapes (0-d, 1-d, a long shape, and one whose dict
        // ends exactly on a 64-byte boundary, where numpy still adds a full 64 spaces).
        let long = [5, 777, 777, 777, 777, 777, 777, 777, 7, 7];
        for (shape, repr, len) in [
            (&[][..], "()", 118u16),
            (&[5][..], "(5,)", 118),
            (&[0][..], "(0,)", 118),
            (&[1, 2, 3, 4][..], "(1, 2, 3, 4)", 118),
            (&long[..], "(5, 777, 777, 777, 777, 777, 777, 777, 7, 7)", 182),
        ] {
            let dict = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {repr}, }}");
            assert_eq!(header_bytes(shape), numpy_header(&dict, len), "{repr}");
        }
    }

    #[test]
    fn round_trip_keeps_values_and_shape() {
        let data = [1.5f32, -0.0, f32::MIN_POSITIVE, 3.4e38, f32::NAN, 7.0];
        for shape in [vec![6], vec![2, 3], vec![3, 1, 2]] {
            let (got, s) = read_npy_f32(&npy_f32(&data, &shape)).unwrap();
            assert_eq!(s, shape);
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&data));
        }
        assert_eq!(read_npy_f32(&npy_f32(&[2.0], &[])).unwrap(), (vec![2.0], vec![]));
        assert_eq!(read_npy_f32(&npy_f32(&[], &[0, 4])).unwrap(), (vec![], vec![0, 4]));
    }

    #[test]
    fn a_header_past_64_kib_uses_version_2() {
        let shape = vec![1usize; 22_000];
        let bytes = npy_f32(&[4.0], &shape);
        assert_eq!(&bytes[..8], b"\x93NUMPY\x02\x00");
        assert_eq!((bytes.len() - 4) % ALIGN, 0);
        assert_eq!(read_npy_f32(&bytes).unwrap(), (vec![4.0], shape));
    }

    #[test]
    fn reads_version_2_and_other_quoting() {
        let dict = "{\"shape\": (2L,), \"fortran_order\": False, \"descr\": \"<f4\"}\n";
        let mut v = b"\x93NUMPY\x02\x00".to_vec();
        v.extend_from_slice(&(dict.len() as u32).to_le_bytes());
        v.extend_from_slice(dict.as_bytes());
        v.extend([1.0f32, 2.0].iter().flat_map(|x| x.to_le_bytes()));
        assert_eq!(read_npy_f32(&v).unwrap(), (vec![1.0, 2.0], vec![2]));
    }

    fn with_dict(dict: &str, data_len: usize) -> Vec<u8> {
        let mut v = numpy_header(dict, 118);
        v.resize(v.len() + data_len, 0);
        v
    }

    #[test]
    fn rejects_what_it_cannot_read() {
        let cases = [
            (b"PK\x03\x04 not npy".to_vec(), "magic"),
            (b"\x93NUMPY\x01\x00\xff\x00{".to_vec(), "truncated"),
            (b"\x93NUMPY\x04\x00\x00\x00".to_vec(), "version 4.0"),
            (with_dict("{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", 16), "'<f8'"),
            (with_dict("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8), "'>f4'"),
            (with_dict("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 16), "Fortran"),
            (with_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", 12), "needs 16"),
            (with_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", 20), "needs 16"),
            (with_dict("{'descr': '<f4', 'shape': (2,), }", 8), "lacks"),
            (with_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (a,), }", 8), "tuple"),
            (
                with_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 4), }", 0),
                "too large",
            ),
        ];
        for (bytes, needle) in cases {
            let e = read_npy_f32(&bytes).unwrap_err().to_string();
            assert!(e.contains(needle), "{needle}: {e}");
        }
    }
}
