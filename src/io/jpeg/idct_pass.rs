//! The 1-D pass of libjpeg's `jpeg_idct_islow` on eight lanes at once, in `i64` (libjpeg's
//! `JLONG`) or `i32` lanes, and the bound within which the two agree.

pub(super) const CONST_BITS: u32 = 13;
pub(super) const PASS1_BITS: u32 = 2;

/// `FIX(x) = round(x · 2¹³)` for the constants of the algorithm.
pub(super) const FIX_0_298631336: i64 = 2446;
pub(super) const FIX_0_390180644: i64 = 3196;
pub(super) const FIX_0_541196100: i64 = 4433;
pub(super) const FIX_0_765366865: i64 = 6270;
pub(super) const FIX_0_899976223: i64 = 7373;
pub(super) const FIX_1_175875602: i64 = 9633;
pub(super) const FIX_1_501321110: i64 = 12299;
pub(super) const FIX_1_847759065: i64 = 15137;
pub(super) const FIX_1_961570560: i64 = 16069;
pub(super) const FIX_2_053119869: i64 = 16819;
pub(super) const FIX_2_562915447: i64 = 20995;
pub(super) const FIX_3_072711026: i64 = 25172;

/// The integer type of a lane: `i32`, which decoding uses (every block it accepts keeps each
/// pass output in 32 bits, so wrapping 32-bit arithmetic gives the very same values: it is
/// exact modulo 2³², and the true values fit), or `i64` as libjpeg's `JLONG`, which the tests
/// hold the `i32` lanes to.
pub(super) trait Lane: Copy + Default + Ord {
    fn from_i64(v: i64) -> Self;
    fn to_i64(self) -> i64;
    fn add(self, b: Self) -> Self;
    fn sub(self, b: Self) -> Self;
    fn mul(self, c: i64) -> Self;
    fn shl(self, n: u32) -> Self;
    fn shr(self, n: u32) -> Self;
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
            #[inline(always)]
            fn shr(self, n: u32) -> Self {
                self >> n
            }
        }
    };
}
lane!(i32);
lane!(i64);

/// Eight lanes (the eight columns, or rows, of a block) computed alike; written lane-wise so the
/// compiler vectorises it.
pub(super) type Lanes<T> = [T; 8];

/// One 1-D pass of `jpeg_idct_islow` on eight lanes at once: `d[k]` holds input `k` of every
/// lane; returns the eight outputs per lane, not yet descaled. Linear, with no rounding inside.
/// One loop over the lanes with no dependence between them, which the compiler vectorises.
#[inline(always)]
pub(super) fn pass<T: Lane>(d: &[Lanes<T>; 8]) -> [Lanes<T>; 8] {
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
pub(super) fn descale_lane<T: Lane>(x: T, n: u32) -> T {
    x.add(T::from_i64(1 << (n - 1))).shr(n)
}

/// Whether `x` lies outside `lo ..= hi` (no branches, so loops over it vectorise).
#[inline(always)]
pub(super) fn outside<T: Lane>(x: T, lo: T, hi: T) -> bool {
    (x < lo) | (x > hi)
}

/// The largest |input| of a pass for which every output, plus the descaling bias 2¹⁷, stays
/// within `i32`: (2³¹ − 1 − 2¹⁷) / S, where S = 61 214 is the largest sum of |constants| of one
/// output (the test `lane_limit_keeps_i32_exact` computes S from the pass itself).
const I32_SAFE: i64 = 35_079;
// Inputs that fit 16 bits (all that `idct_block` accepts) are within it.
const _: () = assert!(I32_SAFE > 1 << 15);

#[cfg(test)]
mod tests {
    use super::*;

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
}
