//! The accurate integer inverse DCT, bit for bit as libjpeg's `jpeg_idct_islow` (the
//! Loeffler–Ligtenberg–Moschytz algorithm in 13-bit fixed point, two passes with 2 extra bits
//! between them; libjpeg-turbo's SIMD versions give the same bytes), and its output range limit.

const CONST_BITS: u32 = 13;
const PASS1_BITS: u32 = 2;

/// `FIX(x) = round(x · 2¹³)` for the constants of the algorithm.
const FIX_0_298631336: i64 = 2446;
const FIX_0_390180644: i64 = 3196;
const FIX_0_541196100: i64 = 4433;
const FIX_0_765366865: i64 = 6270;
const FIX_0_899976223: i64 = 7373;
const FIX_1_175875602: i64 = 9633;
const FIX_1_501321110: i64 = 12299;
const FIX_1_847759065: i64 = 15137;
const FIX_1_961570560: i64 = 16069;
const FIX_2_053119869: i64 = 16819;
const FIX_2_562915447: i64 = 20995;
const FIX_3_072711026: i64 = 25172;

/// `(x + 2ⁿ⁻¹) >> n`, libjpeg's `DESCALE` (an arithmetic shift).
#[inline(always)]
fn descale(x: i64, n: u32) -> i64 {
    (x + (1 << (n - 1))) >> n
}

/// libjpeg's post-IDCT range limit (`IDCT_range_limit` indexed by `(int) x & RANGE_MASK`): the
/// level shift by 128 and a clamp to 0..=255 within ±512 of the centre, wrapping beyond (as
/// libjpeg does on corrupt data). `x` is the descaled IDCT output.
#[inline(always)]
fn range_limit(x: i64) -> u8 {
    // `x & 1023` read as a signed 10-bit number, shifted by 128 and clamped: the table's
    // ranges (0..=127 → +128, 128..=511 → 255, 512..=895 → 0, 896.. → −896) without branches.
    let j = (((x as i32) & 1023) ^ 512) - 512;
    (j + 128).clamp(0, 255) as u8
}

/// The integer type of a lane: `i64` as libjpeg's `JLONG`, or `i32` where the block's values
/// are known to keep every pass output in 32 bits (then wrapping 32-bit arithmetic gives the
/// very same values: it is exact modulo 2³², and the true values fit).
trait Lane: Copy + Default {
    fn from_i64(v: i64) -> Self;
    fn to_i64(self) -> i64;
    fn add(self, b: Self) -> Self;
    fn sub(self, b: Self) -> Self;
    fn mul(self, c: i64) -> Self;
    fn shl(self, n: u32) -> Self;
}

macro_rules! lane {
    ($t:ty) => {
        impl Lane for $t {
            #[inline(always)]
            fn from_i64(v: i64) -> Self {
                v as $t
            }
            #[inline(always)]
            fn to_i64(self) -> i64 {
                self as i64
            }
            #[inline(always)]
            fn add(self, b: Self) -> Self {
                self.wrapping_add(b)
            }
            #[inline(always)]
            fn sub(self, b: Self) -> Self {
                self.wrapping_sub(b)
            }
            #[inline(always)]
            fn mul(self, c: i64) -> Self {
                self.wrapping_mul(c as $t)
            }
            #[inline(always)]
            fn shl(self, n: u32) -> Self {
                self.wrapping_shl(n)
            }
        }
    };
}
lane!(i32);
lane!(i64);

/// Eight lanes (the eight columns, or rows, of a block) computed alike; written lane-wise so the
/// compiler vectorises it.
type Lanes<T> = [T; 8];

/// One 1-D pass of `jpeg_idct_islow` on eight lanes at once: `d[k]` holds input `k` of every
/// lane; returns the eight outputs per lane, not yet descaled. Linear, with no rounding inside.
/// One loop over the lanes with no dependence between them, which the compiler vectorises.
#[inline(always)]
fn pass<T: Lane>(d: &[Lanes<T>; 8]) -> [Lanes<T>; 8] {
    let mut out = [[T::default(); 8]; 8];
    for l in 0..8 {
        // Even part.
        let (z2, z3) = (d[2][l], d[6][l]);
        let z1 = z2.add(z3).mul(FIX_0_541196100);
        let tmp2 = z1.add(z3.mul(-FIX_1_847759065));
        let tmp3 = z1.add(z2.mul(FIX_0_765366865));
        let tmp0 = d[0][l].add(d[4][l]).shl(CONST_BITS);
        let tmp1 = d[0][l].sub(d[4][l]).shl(CONST_BITS);
        let (e0, e3, e1, e2) = (tmp0.add(tmp3), tmp0.sub(tmp3), tmp1.add(tmp2), tmp1.sub(tmp2));
        // Odd part.
        let (t0, t1, t2, t3) = (d[7][l], d[5][l], d[3][l], d[1][l]);
        let z1 = t0.add(t3);
        let z2 = t1.add(t2);
        let z3 = t0.add(t2);
        let z4 = t1.add(t3);
        let z5 = z3.add(z4).mul(FIX_1_175875602);
        let z1 = z1.mul(-FIX_0_899976223);
        let z2 = z2.mul(-FIX_2_562915447);
        let z3 = z3.mul(-FIX_1_961570560).add(z5);
        let z4 = z4.mul(-FIX_0_390180644).add(z5);
        let o0 = t0.mul(FIX_0_298631336).add(z1.add(z3));
        let o1 = t1.mul(FIX_2_053119869).add(z2.add(z4));
        let o2 = t2.mul(FIX_3_072711026).add(z2.add(z3));
        let o3 = t3.mul(FIX_1_501321110).add(z1.add(z4));
        out[0][l] = e0.add(o3);
        out[1][l] = e1.add(o2);
        out[2][l] = e2.add(o1);
        out[3][l] = e3.add(o0);
        out[4][l] = e3.sub(o0);
        out[5][l] = e2.sub(o1);
        out[6][l] = e1.sub(o2);
        out[7][l] = e0.sub(o3);
    }
    out
}

/// `(x + 2ⁿ⁻¹) >> n` in the lane type.
#[inline(always)]
fn descale_lane<T: Lane>(x: T, n: u32) -> i64 {
    x.add(T::from_i64(1 << (n - 1))).to_i64() >> n
}

/// The largest |input| of a pass for which every output, plus the descaling bias 2¹⁷, stays
/// within `i32`: (2³¹ − 1 − 2¹⁷) / S, where S = 61 214 is the largest sum of |constants| of one
/// output (the test `lane_limit_keeps_i32_exact` computes S from the pass itself).
const I32_SAFE: i64 = 35_079;

/// Both passes in lane type `T` on the dequantised coefficients `d` (`d[row][col]`), writing
/// `out`; `false` (nothing written) when `T` is `i32` and the work array leaves its safe range.
#[inline(always)]
fn both_passes<T: Lane>(d: &[Lanes<T>; 8], out: &mut [u8], stride: usize) -> bool {
    // Pass 1: columns (lanes) into the work array (`int`), scaled up by 2^PASS1_BITS.
    let p1 = pass(d);
    let mut work = [[T::default(); 8]; 8];
    let mut widest = 0u32;
    for (w, r) in work.iter_mut().zip(&p1) {
        for (w, &v) in w.iter_mut().zip(r) {
            let x = descale_lane(v, CONST_BITS - PASS1_BITS) as i32;
            widest = widest.max(x.unsigned_abs());
            *w = T::from_i64(i64::from(x));
        }
    }
    if size_of::<T>() == 4 && i64::from(widest) > I32_SAFE {
        return false;
    }
    // Pass 2: rows (lanes, so the work array transposed: t[k][row] = work[row][k]), descaled
    // by 8 (the DCT's gain) and 2^PASS1_BITS, level-shifted, limited; transposed back.
    let t: [Lanes<T>; 8] = std::array::from_fn(|k| std::array::from_fn(|row| work[row][k]));
    let res = pass(&t);
    let mut px = [[0u8; 8]; 8];
    for (p, r) in px.iter_mut().zip(&res) {
        for (p, &v) in p.iter_mut().zip(r) {
            *p = range_limit(descale_lane(v, CONST_BITS + PASS1_BITS + 3));
        }
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
/// and (16-bit, `short`) quantisers, 64-bit `JLONG` sums, a 32-bit work array. Blocks whose
/// values keep every sum within 32 bits (all of any real photo) are computed in `i32` lanes,
/// which vectorise; others in `i64`. libjpeg's shortcuts for zero columns and rows give the
/// same values as the full pass, so every lane takes the full pass; a block of only DC takes
/// the shortcut whole. On x86-64 with AVX2 the same code is compiled for it (8 lanes at once).
pub fn idct_block(coefs: &[i16; 64], quant: &[u16; 64], out: &mut [u8], stride: usize) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { idct_block_avx2(coefs, quant, out, stride) };
    }
    idct_block_any(coefs, quant, out, stride);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn idct_block_avx2(coefs: &[i16; 64], quant: &[u16; 64], out: &mut [u8], stride: usize) {
    idct_block_any(coefs, quant, out, stride);
}

#[inline(always)]
fn idct_block_any(coefs: &[i16; 64], quant: &[u16; 64], out: &mut [u8], stride: usize) {
    // `coef * (short) quant` always fits in 32 bits.
    let mut d = [[0i32; 8]; 8];
    let mut widest = 0u32;
    for (r, (c, q)) in d.iter_mut().zip(coefs.chunks_exact(8).zip(quant.chunks_exact(8))) {
        for (v, (&c, &q)) in r.iter_mut().zip(c.iter().zip(q)) {
            *v = i32::from(c) * i32::from(q as i16);
            widest = widest.max(v.unsigned_abs());
        }
    }
    let ac = coefs[1..].iter().fold(0i16, |a, &c| a | c);
    if ac == 0 {
        let v = range_limit(descale(i64::from(d[0][0] << PASS1_BITS), PASS1_BITS + 3));
        for row in 0..8 {
            out[row * stride..row * stride + 8].fill(v);
        }
        return;
    }
    if i64::from(widest) <= I32_SAFE && both_passes::<i32>(&d, out, stride) {
        return;
    }
    both_passes::<i64>(&d.map(|r| r.map(i64::from)), out, stride);
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
        idct_block(&coefs, &q, &mut out, 8);
        assert!(out.iter().all(|&v| v == 138), "{out:?}");
        coefs[0] = 2047;
        idct_block(&coefs, &q, &mut out, 8);
        assert!(out.iter().all(|&v| v == 255));
        coefs[0] = -2048;
        idct_block(&coefs, &q, &mut out, 8);
        assert!(out.iter().all(|&v| v == 0));
    }

    /// S, the largest sum over inputs of |constant| for one output of a pass, computed from the
    /// pass itself (it is linear with no rounding), bounds what `I32_SAFE` may be.
    #[test]
    fn lane_limit_keeps_i32_exact() {
        let mut sums = [0i64; 64];
        for k in 0..8 {
            let mut d = [[0i64; 8]; 8];
            d[k] = [1; 8];
            let out = pass(&d);
            for (o, s) in out.iter().flatten().zip(sums.iter_mut()) {
                *s += o.abs();
            }
        }
        let s = *sums.iter().max().unwrap();
        assert_eq!(s, 61_214);
        assert!(I32_SAFE * s + (1 << 17) <= i64::from(i32::MAX), "I32_SAFE too large for S = {s}");
        assert!((I32_SAFE + 1) * s + (1 << 17) > i64::from(i32::MAX), "I32_SAFE could be larger");
    }

    /// Random blocks, small and huge (corrupt-file) values: the i32 path, where taken, equals
    /// the i64 one.
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
            both_passes::<i64>(&d.map(|r| r.map(i64::from)), &mut a, 8);
            if d.iter().flatten().all(|&v| i64::from(v.abs()) <= I32_SAFE) && both_passes::<i32>(&d, &mut b, 8) {
                assert_eq!(a, b, "{d:?}");
                taken += 1;
            }
        }
        assert!(taken > 5_000, "{taken}");
    }

    #[test]
    fn range_limit_wraps_like_libjpeg() {
        assert_eq!(range_limit(-128), 0);
        assert_eq!(range_limit(-1), 127);
        assert_eq!(range_limit(0), 128);
        assert_eq!(range_limit(127), 255);
        assert_eq!(range_limit(383), 255);
        assert_eq!(range_limit(-384), 0);
    }
}
