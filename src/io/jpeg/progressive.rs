//! The blocks of progressive scans (ITU T.81 G.1.2): DC first and AC first scans, and AC
//! successive-approximation refinement, as libjpeg's `jdphuff.c` decodes them. (DC refinement
//! is one bit per block, in `scan`.)

use super::huffman::{BitReader, Table};
use super::markers::{ScanHeader, NATURAL};
use super::scan::{dc_diff, position, symbol};

/// The same in a progressive DC scan, where libjpeg-turbo's `jdphuff.c` refuses a sum past
/// `i32` ("Bogus DCT coefficient").
fn predict_checked(pred: &mut i32, diff: i32) -> Result<i32, String> {
    *pred = pred.checked_add(diff).ok_or("corrupt data: a DC coefficient out of range")?;
    Ok(*pred)
}

pub(super) fn dc_first(
    r: &mut BitReader,
    dc: &Table,
    pred: &mut i32,
    al: u32,
    block: &mut [i16],
) -> Result<(), String> {
    block[0] = ((predict_checked(pred, dc_diff(r, dc)?)? as u32) << al) as i16;
    Ok(())
}

pub(super) fn ac_first(
    r: &mut BitReader,
    ac: &Table,
    scan: &ScanHeader,
    eobrun: &mut u32,
    block: &mut [i16],
) -> Result<(), String> {
    if *eobrun > 0 {
        *eobrun -= 1;
        return Ok(());
    }
    let mut k = scan.ss;
    while k <= scan.se {
        let rs = symbol(r, ac)?;
        let (run, s) = (usize::from(rs >> 4), u32::from(rs & 15));
        if s != 0 {
            k += run;
            let pos = position(k)?;
            block[pos] = ((r.signed(s) as u32) << scan.al) as i16;
        } else if run == 15 {
            k += 15;
        } else {
            *eobrun = (1 << run) + r.bits(run as u32) - 1;
            break;
        }
        k += 1;
    }
    Ok(())
}

/// Successive-approximation refinement of AC coefficients (libjpeg's `decode_mcu_AC_refine`).
pub(super) fn ac_refine(
    r: &mut BitReader,
    ac: &Table,
    scan: &ScanHeader,
    eobrun: &mut u32,
    block: &mut [i16],
) -> Result<(), String> {
    let p1: i16 = 1 << scan.al;
    let m1: i16 = (-1i16) << scan.al;
    let refine = |r: &mut BitReader, coef: &mut i16| {
        if r.bit() && (*coef & p1) == 0 {
            *coef = coef.wrapping_add(if *coef >= 0 { p1 } else { m1 });
        }
    };
    let mut k = scan.ss;
    if *eobrun == 0 {
        while k <= scan.se {
            let rs = symbol(r, ac)?;
            let (mut run, s) = (i32::from(rs >> 4), u32::from(rs & 15));
            let mut value = 0i16;
            if s != 0 {
                if s != 1 {
                    return Err("corrupt data: a refinement coefficient of more than one bit".into());
                }
                value = if r.bit() { p1 } else { m1 };
            } else if run != 15 {
                *eobrun = (1 << run) + r.bits(run as u32);
                break;
            }
            // Skip the already nonzero coefficients (refining each) and `run` zero ones.
            while k <= scan.se {
                let coef = &mut block[NATURAL[k]];
                if *coef != 0 {
                    refine(r, coef);
                } else {
                    run -= 1;
                    if run < 0 {
                        break;
                    }
                }
                k += 1;
            }
            if value != 0 {
                let pos = position(k)?;
                block[pos] = value;
            }
            k += 1;
        }
    }
    if *eobrun > 0 {
        // Past the end of band: refine the nonzero coefficients left in the band.
        while k <= scan.se {
            let coef = &mut block[NATURAL[k]];
            if *coef != 0 {
                refine(r, coef);
            }
            k += 1;
        }
        *eobrun -= 1;
    }
    Ok(())
}
