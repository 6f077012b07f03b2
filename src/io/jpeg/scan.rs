//! Entropy-coded scans into coefficients: sequential Huffman scans, and progressive DC/AC first
//! and refinement scans (ITU T.81 G.1.2; the blocks' decoding in `progressive`), with restart
//! intervals, as libjpeg's `jdhuff.c` and `jdphuff.c` decode them.

use super::huffman::{BitReader, Table};
use super::markers::{Frame, ScanHeader, Tables, NATURAL};
use super::output::Output;
use super::progressive::{ac_first, ac_refine, dc_first};

/// How a block of the scan is decoded.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sequential,
    DcFirst,
    DcRefine,
    AcFirst,
    AcRefine,
}

struct State {
    pred: [i32; 4],
    eobrun: u32,
}

/// A Huffman table a scan names, or why it is missing (reported when first used).
type Lookup<'a> = Result<&'a Table, String>;

fn table<'a>(t: &'a [Option<Table>; 4], i: usize, what: &str) -> Lookup<'a> {
    t[i].as_ref().ok_or_else(|| format!("the scan uses {what} Huffman table {i}, which was never defined"))
}

/// Checks the scan's parameters (as libjpeg's `start_pass` does), records the bit positions it
/// sends, and allocates coefficient storage on first use (unless the blocks go straight to
/// `streamed`).
fn prepare(frame: &mut Frame, scan: &ScanHeader, streamed: bool) -> Result<Kind, String> {
    let bad = |why: &str| {
        Err(format!(
            "bad progression parameters (Ss {}, Se {}, Ah {}, Al {}): {why}",
            scan.ss, scan.se, scan.ah, scan.al
        ))
    };
    let kind = if !frame.progressive {
        Kind::Sequential
    } else if scan.ss == 0 {
        if scan.se != 0 {
            return bad("a DC scan must end at 0");
        }
        if scan.ah == 0 {
            Kind::DcFirst
        } else {
            Kind::DcRefine
        }
    } else {
        if scan.ss > scan.se || scan.se > 63 {
            return bad("spectral selection out of order");
        }
        if scan.components.len() != 1 {
            return bad("an AC scan must hold one component");
        }
        if scan.ah == 0 {
            Kind::AcFirst
        } else {
            Kind::AcRefine
        }
    };
    if frame.progressive && ((scan.ah != 0 && scan.al + 1 != scan.ah) || scan.al > 13) {
        return bad("successive approximation out of order");
    }
    for &(ci, ..) in &scan.components {
        let c = &mut frame.components[ci];
        if c.coefs.is_empty() && !streamed {
            c.coefs = vec![0; c.bw * c.bh * 64];
        }
        let range = if kind == Kind::Sequential { 0..=63 } else { scan.ss..=scan.se };
        for k in range {
            c.coef_bits[k] = if kind == Kind::Sequential { 0 } else { scan.al as i32 };
        }
    }
    Ok(kind)
}

/// Decodes one scan whose entropy-coded data starts at `data`; returns the bytes consumed (up to
/// the marker that ends it). With `out` (a sequential scan of every component), each block goes
/// to it as soon as it is decoded; otherwise into the components' coefficient stores.
pub fn decode_scan<'a>(
    frame: &mut Frame,
    tables: &'a Tables,
    scan: &ScanHeader,
    data: &[u8],
    mut out: Option<&mut Output>,
) -> Result<usize, String> {
    let kind = prepare(frame, scan, out.is_some())?;
    let mut r = BitReader::new(data);
    let mut st = State { pred: [0; 4], eobrun: 0 };
    let interleaved = scan.components.len() > 1;
    // Units of the scan: MCUs when interleaved, blocks of the single component otherwise.
    let (units_x, units_y) = if interleaved {
        (frame.mcus_x, frame.mcus_y)
    } else {
        let c = &frame.components[scan.components[0].0];
        (c.dw.div_ceil(8), c.dh.div_ceil(8))
    };
    // Each scan component's tables, looked up once; a missing one is an error when first used.
    let coding: Vec<(Lookup<'a>, Lookup<'a>)> =
        scan.components.iter().map(|&(_, td, ta)| (table(&tables.dc, td, "DC"), table(&tables.ac, ta, "AC"))).collect();
    let need = |t: &Lookup<'a>| t.clone();
    // libjpeg refuses a DC table with a category above 15 when a scan that decodes DC starts.
    if matches!(kind, Kind::Sequential | Kind::DcFirst) {
        for (dc, _) in &coding {
            if dc.as_ref().is_ok_and(|t| t.largest_symbol() > 15) {
                return Err("corrupt Huffman table: a DC table with a difference category above 15".into());
            }
        }
    }
    let interval = tables.restart_interval;
    let mut next_rst = 0u8;
    let mut single = [0i16; 64];
    for unit in 0..units_x * units_y {
        if interval > 0 && unit > 0 && unit % interval == 0 {
            if !r.restart(next_rst) {
                return Err(format!("corrupt data: expected restart marker RST{next_rst}"));
            }
            next_rst = (next_rst + 1) % 8;
            st = State { pred: [0; 4], eobrun: 0 };
        }
        let (ux, uy) = (unit % units_x, unit / units_x);
        for (slot, (&(ci, ..), (dc, ac))) in scan.components.iter().zip(&coding).enumerate() {
            let c = &mut frame.components[ci];
            let (bw, h, v) = (c.bw, c.h, c.v);
            let (nh, nv) = if interleaved { (h, v) } else { (1, 1) };
            for by in 0..nv {
                for bx in 0..nh {
                    let (x, y) = if interleaved { (ux * h + bx, uy * v + by) } else { (ux, uy) };
                    if let Some(out) = out.as_deref_mut() {
                        sequential(&mut r, need(dc)?, need(ac)?, &mut st.pred[slot], &mut single)?;
                        out.block(ci, x, y, &single)?;
                        single = [0; 64];
                        continue;
                    }
                    let block = &mut c.coefs[(y * bw + x) * 64..(y * bw + x) * 64 + 64];
                    match kind {
                        Kind::Sequential => sequential(&mut r, need(dc)?, need(ac)?, &mut st.pred[slot], block)?,
                        Kind::DcFirst => dc_first(&mut r, need(dc)?, &mut st.pred[slot], scan.al, block)?,
                        Kind::DcRefine => {
                            if r.bit() {
                                block[0] |= 1 << scan.al;
                            }
                        }
                        Kind::AcFirst => ac_first(&mut r, need(ac)?, scan, &mut st.eobrun, block)?,
                        Kind::AcRefine => ac_refine(&mut r, need(ac)?, scan, &mut st.eobrun, block)?,
                    }
                }
            }
        }
        if r.overrun > 0 {
            return Err(match r.marker {
                Some(0xd9) | None => "truncated JPEG: the image data ends before the last block of a scan".into(),
                Some(m) => format!("corrupt data: a scan's data ends at marker FF {m:02X} before its last block"),
            });
        }
        if let Some(out) = out.as_deref_mut().filter(|_| ux + 1 == units_x) {
            for &(ci, ..) in &scan.components {
                let nv = if interleaved { frame.components[ci].v } else { 1 };
                out.filled(ci, (uy + 1) * nv);
            }
        }
    }
    Ok(r.position())
}

/// The block position of zigzag index `k`, or the error of a run past the block's end.
pub(super) fn position(k: usize) -> Result<usize, String> {
    NATURAL.get(k).copied().ok_or_else(|| "corrupt data: a coefficient past the end of its block".into())
}

/// Adds a DC difference to the predictor of a sequential scan, wrapping past `i32` as
/// libjpeg-turbo's `jdhuff.c` does (its sum is unsigned; PIL decodes such files).
fn predict(pred: &mut i32, diff: i32) -> i32 {
    *pred = pred.wrapping_add(diff);
    *pred
}

pub(super) fn symbol(r: &mut BitReader, t: &Table) -> Result<u8, String> {
    r.decode(t).ok_or_else(|| "corrupt data: a code no Huffman table holds".to_string())
}

pub(super) fn dc_diff(r: &mut BitReader, t: &Table) -> Result<i32, String> {
    // At most 15 bits: a scan that decodes DC refuses tables with larger categories at its start.
    let s = u32::from(symbol(r, t)?);
    Ok(r.signed(s))
}

fn sequential(r: &mut BitReader, dc: &Table, ac: &Table, pred: &mut i32, block: &mut [i16]) -> Result<(), String> {
    block[0] = predict(pred, dc_diff(r, dc)?) as i16;
    let mut k = 1;
    while k < 64 {
        if let Some((run, value)) = r.ac_coefficient(ac) {
            k += run;
            let pos = position(k)?;
            block[pos] = value;
            k += 1;
            continue;
        }
        let rs = symbol(r, ac)?;
        let (run, s) = (usize::from(rs >> 4), u32::from(rs & 15));
        if s != 0 {
            k += run;
            let pos = position(k)?;
            block[pos] = r.signed(s) as i16;
        } else if run == 15 {
            k += 15;
        } else {
            break;
        }
        k += 1;
    }
    Ok(())
}
