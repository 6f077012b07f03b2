//! Huffman tables (ITU T.81 Annex C) and the bit reader of entropy-coded segments (byte
//! stuffing, restart markers), as libjpeg reads them.

/// Bits looked up at once; longer codes take the slow path.
const LOOKAHEAD: u32 = 9;

/// A decoding table built from a DHT segment.
#[derive(Clone, Debug)]
pub struct Table {
    /// `(symbol, length)` for every `LOOKAHEAD`-bit prefix whose code is that short; length 0
    /// when the code is longer.
    fast: Vec<(u8, u8)>,
    /// `maxcode[l]`: the largest code of length `l` (−1 when none), `l` in 1..=16.
    maxcode: [i32; 18],
    /// `valoffset[l]`: index of the first symbol of length `l` minus its code.
    valoffset: [i32; 17],
    symbols: Vec<u8>,
    /// For AC decoding: per `LOOKAHEAD`-bit prefix whose code *and* the coefficient's extra
    /// bits fit, `(value, run, bits used)`; bits 0 otherwise (then the symbol path decodes it).
    ac: Vec<(i16, u8, u8)>,
}

impl Table {
    /// Builds a table from the 16 code-length counts and the symbols; `None` if the counts
    /// describe no valid prefix code.
    pub fn new(counts: &[u8; 16], symbols: &[u8]) -> Option<Table> {
        let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
        if total != symbols.len() || total > 256 {
            return None;
        }
        let mut maxcode = [-1i32; 18];
        let mut valoffset = [0i32; 17];
        let mut fast = vec![(0u8, 0u8); 1 << LOOKAHEAD];
        let (mut code, mut k) = (0i32, 0usize);
        for len in 1..=16u32 {
            let n = usize::from(counts[len as usize - 1]);
            valoffset[len as usize] = k as i32 - code;
            for _ in 0..n {
                if len <= LOOKAHEAD {
                    let shift = LOOKAHEAD - len;
                    let first = (code as usize) << shift;
                    for slot in fast.get_mut(first..first + (1 << shift))? {
                        *slot = (symbols[k], len as u8);
                    }
                }
                code += 1;
                k += 1;
            }
            if n > 0 {
                maxcode[len as usize] = code - 1;
            }
            // A code that does not fit in `len` bits: the counts are not a prefix code.
            if code > (1 << len) {
                return None;
            }
            code <<= 1;
        }
        maxcode[17] = i32::MAX;
        let ac = fast
            .iter()
            .enumerate()
            .map(|(prefix, &(sym, len))| {
                let (run, size) = (sym >> 4, u32::from(sym & 15));
                let used = u32::from(len) + size;
                if len == 0 || size == 0 || used > LOOKAHEAD {
                    return (0, 0, 0);
                }
                let extra = (prefix as i32 >> (LOOKAHEAD - used)) & ((1 << size) - 1);
                (extend(extra, size) as i16, run, used as u8)
            })
            .collect();
        Some(Table { fast, maxcode, valoffset, symbols: symbols.to_vec(), ac })
    }

    /// The largest symbol the table codes (0 for an empty table).
    pub fn largest_symbol(&self) -> u8 {
        self.symbols.iter().copied().max().unwrap_or(0)
    }
}

/// The coefficient an `n`-bit magnitude category and its `n` extra bits `v` stand for (T.81
/// F.2.2.1, libjpeg's `HUFF_EXTEND`).
fn extend(v: i32, n: u32) -> i32 {
    if n == 0 {
        0
    } else if v < 1 << (n - 1) {
        v - (1 << n) + 1
    } else {
        v
    }
}

/// Reads bits MSB-first from an entropy-coded segment. At a marker (an `FF` not followed by
/// `00`) or the end of the file it supplies zero bits, as libjpeg does, and counts how many of
/// them a decode consumed: any consumed means the segment was cut short or damaged.
pub struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    /// Valid bits, MSB first; the lowest `pad` of the `bits` valid ones are padding.
    acc: u64,
    bits: u32,
    pad: u32,
    /// Padding bits consumed (the data ended before the decode did).
    pub overrun: u32,
    /// The marker that ended the data, once reached (`D9` also stands for the end of the file).
    pub marker: Option<u8>,
}

impl<'a> BitReader<'a> {
    /// A reader at the start of `data` (the bytes after an SOS header).
    pub fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0, acc: 0, bits: 0, pad: 0, overrun: 0, marker: None }
    }

    /// Bytes of `data` consumed (up to the marker that ended the scan, once reached).
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The next byte of entropy-coded data and whether it is padding.
    fn next_byte(&mut self) -> (u8, bool) {
        if self.marker.is_some() {
            return (0, true);
        }
        loop {
            match self.data.get(self.pos) {
                None => {
                    self.marker = Some(0xd9);
                    return (0, true);
                }
                Some(&0xff) => match self.data.get(self.pos + 1) {
                    Some(0x00) => {
                        self.pos += 2;
                        return (0xff, false);
                    }
                    // Fill bytes (FF FF …) before a marker.
                    Some(0xff) => self.pos += 1,
                    Some(&m) => {
                        self.marker = Some(m);
                        return (0, true);
                    }
                    None => {
                        self.marker = Some(0xd9);
                        return (0, true);
                    }
                },
                Some(&b) => {
                    self.pos += 1;
                    return (b, false);
                }
            }
        }
    }

    fn fill(&mut self) {
        while self.bits <= 56 {
            let (byte, padding) = self.next_byte();
            self.acc |= u64::from(byte) << (56 - self.bits);
            self.bits += 8;
            if padding {
                self.pad += 8;
            }
        }
    }

    fn consume(&mut self, n: u32) {
        let real = self.bits - self.pad;
        if n > real {
            self.overrun += n - real;
            self.pad -= n - real;
        }
        self.acc <<= n;
        self.bits -= n;
    }

    /// The next `n` (1 ≤ n ≤ 16) bits, not consumed.
    fn peek(&mut self, n: u32) -> u32 {
        if self.bits < n {
            self.fill();
        }
        (self.acc >> (64 - n)) as u32
    }

    /// The next `n` bits (0 to 16) as an unsigned number.
    pub fn bits(&mut self, n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        let v = self.peek(n);
        self.consume(n);
        v
    }

    /// Reads one bit.
    pub fn bit(&mut self) -> bool {
        self.bits(1) == 1
    }

    /// Decodes one Huffman symbol; `None` for a code no table entry has.
    pub fn decode(&mut self, t: &Table) -> Option<u8> {
        let look = self.peek(LOOKAHEAD) as usize;
        let (sym, len) = t.fast[look];
        if len > 0 {
            self.consume(u32::from(len));
            return Some(sym);
        }
        let all = self.peek(16) as i32;
        for len in LOOKAHEAD + 1..=16 {
            let code = all >> (16 - len);
            if code <= t.maxcode[len as usize] {
                self.consume(len);
                let idx = t.valoffset[len as usize] + code;
                return t.symbols.get(usize::try_from(idx).ok()?).copied();
            }
        }
        None
    }

    /// `receive_extend`: `n` (≤ 16) bits as a signed value (T.81 F.2.2.1).
    pub fn signed(&mut self, n: u32) -> i32 {
        let v = self.bits(n) as i32;
        extend(v, n)
    }

    /// A nonzero AC coefficient whose code and extra bits fit in the lookahead, decoded at
    /// once: `(run of zeros before it, value)`; `None` (nothing read) otherwise.
    #[inline(always)]
    pub fn ac_coefficient(&mut self, t: &Table) -> Option<(usize, i16)> {
        let (value, run, used) = t.ac[self.peek(LOOKAHEAD) as usize];
        if used == 0 {
            return None;
        }
        self.consume(u32::from(used));
        Some((usize::from(run), value))
    }

    /// At the end of a restart interval: drops the bits left in the current byte and reads the
    /// marker `RSTn` (`n` = `expected`); `false` if another marker, or none, is there.
    pub fn restart(&mut self, expected: u8) -> bool {
        // Bytes read ahead into the accumulator are before the marker, never after: the reader
        // stops at markers. Drop them (the rest of the interval's last byte was padding).
        self.acc = 0;
        self.bits = 0;
        self.pad = 0;
        if self.marker.is_none() {
            while self.pos < self.data.len() {
                if self.data[self.pos] == 0xff && self.data.get(self.pos + 1).is_some_and(|&m| m != 0 && m != 0xff) {
                    break;
                }
                self.pos += 1;
            }
            self.marker = Some(self.data.get(self.pos + 1).copied().unwrap_or(0xd9));
        }
        if self.marker == Some(0xd0 + expected) {
            self.pos += 2;
            self.marker = None;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_decode_and_overruns_are_counted() {
        // Codes: A=0, B=10, C=110 (lengths 1, 2, 3).
        let mut counts = [0u8; 16];
        counts[0] = 1;
        counts[1] = 1;
        counts[2] = 1;
        let t = Table::new(&counts, b"ABC").unwrap();
        // 0 10 110 0 | 1 ... : A B C A then padding.
        let data = [0b0101_1001, 0xff, 0xd9];
        let mut r = BitReader::new(&data);
        let got: Vec<u8> = (0..4).map(|_| r.decode(&t).unwrap()).collect();
        assert_eq!(got, b"ABCA");
        assert_eq!(r.overrun, 0);
        r.bits(2);
        assert_eq!(r.overrun, 1, "one bit of the byte was left, the second is padding");
        assert_eq!(r.marker, Some(0xd9));
        // Three codes of length 1 are no prefix code.
        counts[0] = 3;
        assert!(Table::new(&counts, b"ABCDE").is_none());
    }

    #[test]
    fn stuffed_bytes_and_signed_values() {
        let data = [0xff, 0x00, 0x0f];
        let mut r = BitReader::new(&data);
        assert_eq!(r.bits(8), 0xff);
        assert_eq!(r.signed(4), -15);
        assert_eq!(r.signed(4), 15);
        assert_eq!(r.overrun, 0);
    }
}
