//! Auto-vectorised inner loops: [`dispatch!`] compiles one loop body for AVX-512, for AVX2 + FMA
//! and for the baseline target, and picks one at run time; [`exp`] is a branch-free `eˣ` those
//! loops can vectorise (libm's `expf` is one call per element).

/// Lanes the reductions below keep apart (one AVX-512 register, two AVX2 ones), so that the
/// compiler may vectorise them without reassociating an f32 sum itself.
pub const LANES: usize = 16;

/// Defines `fn $name(args) -> R` running `$body(args)`, where `$body` is an `#[inline(always)]`
/// function, compiled for the widest x86-64 vector extension the CPU has (AVX-512, else AVX2 +
/// FMA), or for the baseline target elsewhere.
macro_rules! dispatch {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? = $body:path;) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                fn avx512($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    $body($($arg),*)
                }
                if $crate::backend::cpu::simd::has_avx512() {
                    // SAFETY: `avx512` only needs the target features `has_avx512` checked.
                    return unsafe { avx512($($arg),*) };
                }
                if $crate::backend::cpu::simd::has_avx2() {
                    // SAFETY: `avx2` only needs the target features `has_avx2` checked.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $body($($arg),*)
        }
    };
}
pub(crate) use dispatch;

/// Whether this CPU runs the AVX-512 builds of [`dispatch!`] bodies.
#[cfg(target_arch = "x86_64")]
pub fn has_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx512vl") && has_avx2()
}

/// Whether this CPU runs the AVX2 + FMA builds of [`dispatch!`] bodies.
#[cfg(target_arch = "x86_64")]
pub fn has_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

/// Below this `exp` returns 0 (`e⁻⁸⁷·³³⁶⁵⁴` is the smallest normal f32).
const EXP_LO: f32 = -87.336_54;
/// Above this `exp` returns +∞ (`2¹²⁷·⁵` would need a 2¹²⁸ scale).
const EXP_HI: f32 = 88.376_26;
/// `1.5 · 2²³`: adding it rounds an f32 of magnitude below 2²² to an integer, kept in the low
/// mantissa bits.
const ROUND_MAGIC: f32 = 12_582_912.0;
/// ln 2 split so that `n · LN2_HI` is exact for the `n` used here (Cephes' `C1` = 0.693359375,
/// `C2`).
const LN2_HI: f32 = 355.0 / 512.0;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Cephes' `expf` minimax polynomial for `(eʳ − 1 − r) / r²` on |r| ≤ ln2 / 2.
const EXP_POLY: [f32; 6] = [1.987_569_1e-4, 1.398_199_9e-3, 8.333_452e-3, 4.166_579_6e-2, 0.166_666_65, 0.5];

/// `eˣ` within 2 ulp of libm's over the normal range; 0 below it (instead of subnormals), +∞
/// above it, NaN for NaN. Branch-free, so loops calling it vectorise.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    // x = n·ln2 + r with n = round(x / ln2), |r| ≤ ln2/2.
    let t = x * std::f32::consts::LOG2_E + ROUND_MAGIC;
    let n = t - ROUND_MAGIC;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = EXP_POLY[1..].iter().fold(EXP_POLY[0], |acc, &c| acc * r + c);
    let er = p * (r * r) + r + 1.0;
    // 2ⁿ from n's bits in t (valid for −126 ≤ n ≤ 127; outside, the selects below replace y).
    let scale = f32::from_bits(t.to_bits().wrapping_sub(ROUND_MAGIC.to_bits()).wrapping_add(127) << 23);
    let y = er * scale;
    let y = if x > EXP_HI { f32::INFINITY } else { y };
    if x < EXP_LO {
        0.0
    } else {
        y
    }
}

/// Largest element (as `f32::max` folds them: NaNs are skipped); −∞ for an empty slice.
#[inline(always)]
pub fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = padded(chunks.remainder(), f32::NEG_INFINITY);
    for c in chunks.chain([&tail[..]]) {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = a.max(v);
        }
    }
    acc.iter().copied().fold(f32::NEG_INFINITY, f32::max)
}

/// Sum of the elements, accumulated in [`LANES`] interleaved partial sums.
#[inline(always)]
pub fn sum(x: &[f32]) -> f32 {
    sum_map(x, |v| v)
}

/// Sum of `f(v)` over the elements, accumulated like [`sum`].
#[inline(always)]
pub fn sum_map(x: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let rest = chunks.remainder().len();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v);
        }
    }
    let tail = padded(&x[x.len() - rest..], 0.0);
    acc.iter().sum::<f32>() + tail[..rest].iter().map(|&v| f(v)).sum::<f32>()
}

/// Replaces each element `v` by `f(v)` and returns the sum of the results (accumulated like
/// [`sum`]).
#[inline(always)]
pub fn map_sum(x: &mut [f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; LANES];
    let mut chunks = x.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *v = f(*v);
            *a += *v;
        }
    }
    let rest = chunks.into_remainder();
    let mut tail = padded(rest, 0.0);
    for v in tail.iter_mut() {
        *v = f(*v);
    }
    rest.copy_from_slice(&tail[..rest.len()]);
    acc.iter().sum::<f32>() + rest.iter().sum::<f32>()
}

/// The (fewer than [`LANES`]) elements of `rest`, then `fill`: one full vector, so that a
/// remainder goes through the same vector code as the rest.
#[inline(always)]
fn padded(rest: &[f32], fill: f32) -> [f32; LANES] {
    let mut v = [fill; LANES];
    v[..rest.len()].copy_from_slice(rest);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place between two finite floats of the same sign.
    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn exp_is_within_two_ulp_of_libm() {
        let mut worst = 0;
        let mut x = EXP_LO;
        while x < EXP_HI {
            worst = worst.max(ulps(exp(x), x.exp()));
            x += 0.000_37;
        }
        assert!(worst <= 2, "worst error {worst} ulp");
    }

    #[test]
    fn exp_edges() {
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp(-100.0), 0.0);
        assert_eq!(exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp(100.0), f32::INFINITY);
        assert!(exp(f32::NAN).is_nan());
    }

    #[test]
    fn reductions_match_sequential_ones() {
        let x: Vec<f32> = (0..1000).map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.01).collect();
        for len in [0, 1, 15, 16, 17, 100, 1000] {
            let s = &x[..len];
            assert_eq!(max(s), s.iter().copied().fold(f32::NEG_INFINITY, f32::max));
            let want: f64 = s.iter().map(|&v| f64::from(v)).sum();
            assert!((f64::from(sum(s)) - want).abs() < 1e-4, "sum of {len}");
        }
    }
}
