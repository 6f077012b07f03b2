//! The accurate integer inverse DCT of a block, bit for bit as libjpeg's `jpeg_idct_islow` (the
//! Loeffler–Ligtenberg–Moschytz algorithm in 13-bit fixed point, two passes with 2 extra bits
//! between them; the pass itself is in `idct_pass`), and its output range limit.
//! libjpeg-turbo's SIMD versions, which PIL runs, give the same bytes while every value fits
//! their 16-bit lanes, as in every valid 8-bit JPEG; beyond, SIMD and C differ (and so PIL
//! differs by CPU), so such blocks are refused.

use super::idct_pass::{descale_lane, outside, pass, Lane, Lanes, CONST_BITS, PASS1_BITS};

/// `(x + 2ⁿ⁻¹) >> n`, libjpeg's `DESCALE` (an arithmetic shift).
#[inline(always)]
fn descale(x: i64, n: u32) -> i64 {
    (x + (1 << (n - 1))) >> n
}

/// libjpeg's post-IDCT range limit (`IDCT_range_limit`) on the outputs it is ever given here,
/// those in [`OUTPUT_RANGE`] (blocks with others are refused): the level shift by 128 and a
/// clamp to 0..=255. `x` is the descaled IDCT output.
#[inline(always)]
fn range_limit(x: i64) -> u8 {
    (x + 128).clamp(0, 255) as u8
}

/// The descaled outputs within which libjpeg's range-limit table clamps (beyond, it wraps,
/// where the SIMD versions saturate).
const OUTPUT_RANGE: std::ops::RangeInclusive<i64> = -512..=511;

/// Both passes in lane type `T` on the dequantised coefficients `d` (`d[row][col]`), writing
/// `out`; `false` when a value leaves the range where libjpeg-turbo's SIMD and C IDCTs agree:
/// a work-array value past 16 bits (SIMD saturates it), or an output past [`OUTPUT_RANGE`].
#[inline(always)]
fn both_passes<T: Lane>(d: &[Lanes<T>; 8], out: &mut [u8], stride: usize) -> bool {
    // Pass 1: columns (lanes) into the work array (`int`), scaled up by 2^PASS1_BITS.
    let p1 = pass(d);
    let mut work = [[T::default(); 8]; 8];
    let (lo, hi) = (T::from_i64(i16::MIN.into()), T::from_i64(i16::MAX.into()));
    let mut bad = false;
    for (w, r) in work.iter_mut().zip(&p1) {
        for (w, &v) in w.iter_mut().zip(r) {
            *w = descale_lane(v, CONST_BITS - PASS1_BITS);
            bad |= outside(*w, lo, hi);
        }
    }
    if bad {
        return false;
    }
    // Pass 2: rows (lanes, so the work array transposed: t[k][row] = work[row][k]), descaled
    // by 8 (the DCT's gain) and 2^PASS1_BITS, level-shifted, limited; transposed back.
    let t: [Lanes<T>; 8] = std::array::from_fn(|k| std::array::from_fn(|row| work[row][k]));
    let res = pass(&t);
    let mut px = [[0u8; 8]; 8];
    let (lo, hi) = (T::from_i64(*OUTPUT_RANGE.start()), T::from_i64(*OUTPUT_RANGE.end()));
    for (p, r) in px.iter_mut().zip(&res) {
        for (p, &v) in p.iter_mut().zip(r) {
            let x = descale_lane(v, CONST_BITS + PASS1_BITS + 3);
            bad |= outside(x, lo, hi);
            *p = range_limit(x.to_i64());
        }
    }
    if bad {
        return false;
    }
    for row in 0..8 {
        let line = &mut out[row * stride..row * stride + 8];
        for (col, o) in line.iter_mut().enumerate() {
            *o = px[col][row];
        }
    }
    true
}

/// Dequantises and inverse-transforms one block (`coefs` and `quant` row-major) into 8 rows of
/// `out` (`stride` bytes apart). Values as libjpeg's on LP64: products of 16-bit coefficients
/// and (16-bit, `short`) quantisers, 64-bit `JLONG` sums, a 32-bit work array. `false` (the
/// block's pixels unset) when a value leaves the range of libjpeg-turbo's 16-bit SIMD lanes: a
/// dequantised coefficient or work-array value past `i16`, or an output past
/// [`OUTPUT_RANGE`]. Within it, every sum keeps to 32 bits, so the pass runs in `i32` lanes,
/// which vectorise. libjpeg's shortcuts for zero columns and rows give the same values as the
/// full pass, so every lane takes the full pass; a block of only DC takes the shortcut whole.
/// On x86-64 with AVX2 the same code is compiled for it (8 lanes at once).
pub fn idct_block(coefs: &[i16; 64], quant: &[u16; 64], out: &mut [u8], stride: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { idct_block_avx2(coefs, quant, out, stride) };
    }
    idct_block_any(coefs, quant, out, stride)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn idct_block_avx2(coefs: &[i16; 64], quant: &[u16; 64], out: &mut [u8], stride: usize) -> bool {
    idct_block_any(coefs, quant, out, stride)
}

#[inline(always)]
fn idct_block_any(coefs: &[i16; 64], quant: &[u16; 64], out: &mut [u8], stride: usize) -> bool {
    // `coef * (short) quant` always fits in 32 bits; the SIMD versions keep its low 16.
    let mut d = [[0i32; 8]; 8];
    let mut bad = false;
    for (r, (c, q)) in d.iter_mut().zip(coefs.chunks_exact(8).zip(quant.chunks_exact(8))) {
        for (v, (&c, &q)) in r.iter_mut().zip(c.iter().zip(q)) {
            *v = i32::from(c) * i32::from(q as i16);
            bad |= outside(*v, i16::MIN.into(), i16::MAX.into());
        }
    }
    if bad {
        return false;
    }
    let ac = coefs[1..].iter().fold(0i16, |a, &c| a | c);
    if ac == 0 {
        let work = i64::from(d[0][0] << PASS1_BITS);
        let x = descale(work, PASS1_BITS + 3);
        if work > i64::from(i16::MAX) || work < i64::from(i16::MIN) || !OUTPUT_RANGE.contains(&x) {
            return false;
        }
        let v = range_limit(x);
        for row in 0..8 {
            out[row * stride..row * stride + 8].fill(v);
        }
        return true;
    }
    // |d| ≤ 2^15 < I32_SAFE: the i32 lanes are exact.
    both_passes::<i32>(&d, out, stride)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dc_only_blocks_are_flat_and_limited() {
        let q = [1u16; 64];
        let mut coefs = [0i16; 64];
        let mut out = [0u8; 64];
        coefs[0] = 80; // 80 / 8 = +10 around the centre
        assert!(idct_block(&coefs, &q, &mut out, 8));
        assert!(out.iter().all(|&v| v == 138), "{out:?}");
        coefs[0] = 2047;
        assert!(idct_block(&coefs, &q, &mut out, 8));
        assert!(out.iter().all(|&v| v == 255));
        coefs[0] = -2048;
        assert!(idct_block(&coefs, &q, &mut out, 8));
        assert!(out.iter().all(|&v| v == 0));
        // An output past ±511 (4092 / 8 rounds to 512), where libjpeg's table wraps and its
        // SIMD versions saturate: refused.
        coefs[0] = 4091;
        assert!(idct_block(&coefs, &q, &mut out, 8));
        coefs[0] = 4092;
        assert!(!idct_block(&coefs, &q, &mut out, 8));
        // A dequantised coefficient past 16 bits.
        coefs[0] = 0;
        coefs[1] = 300;
        assert!(!idct_block(&coefs, &[200; 64], &mut out, 8));
    }

    /// Random blocks, small and huge (corrupt-file) values: the i32 lanes, on every block whose
    /// inputs fit 16 bits, equal `i64` ones (libjpeg's `JLONG`), and refuse the same blocks.
    #[test]
    fn i32_lanes_equal_i64_lanes() {
        let mut x = 0x9e3779b9u32;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let mut taken = 0;
        for trial in 0..20_000 {
            let scale = [40, 400, 4000, 32767][trial % 4];
            let d: [[i32; 8]; 8] =
                std::array::from_fn(|_| std::array::from_fn(|_| (next() % (2 * scale + 1)) as i32 - scale as i32));
            let (mut a, mut b) = ([0u8; 64], [0u8; 64]);
            let wide = both_passes::<i64>(&d.map(|r| r.map(i64::from)), &mut a, 8);
            assert_eq!(both_passes::<i32>(&d, &mut b, 8), wide, "{d:?}");
            assert_eq!(a, b, "{d:?}");
            taken += usize::from(wide);
        }
        assert!(taken > 5_000, "{taken}");
    }

    #[test]
    fn range_limit_clamps_like_libjpeg() {
        assert_eq!(range_limit(-128), 0);
        assert_eq!(range_limit(-1), 127);
        assert_eq!(range_limit(0), 128);
        assert_eq!(range_limit(127), 255);
        assert_eq!(range_limit(383), 255);
        assert_eq!(range_limit(-384), 0);
    }
}
