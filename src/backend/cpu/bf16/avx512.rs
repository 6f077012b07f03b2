//! The AVX512-BF16 micro-kernel (`VDPBF16PS`, 6 × 64 outputs in 24 accumulators, f32 sums)
//! and the one-time timing of that instruction against f32 FMA.

use std::arch::x86_64::*;

use super::{Bf16Panels, SharedOut, MC, MR, PANEL};

/// The AVX512-BF16 path over `panels`: row blocks of [`MC`] rows, each swept over every
/// panel, [`MR`] rows at a time.
///
/// # Safety
/// The CPU has AVX-512F and AVX512-BF16; `rows` holds `m` rounded up to [`MR`] rows of
/// `row` values; `out` is the `m × b.n` output and only this call writes `panels`' columns.
#[target_feature(enable = "avx512f,avx512bf16")]
pub(super) unsafe fn panels(
    rows: &[u16],
    row: usize,
    b: &Bf16Panels,
    bias: Option<&[f32]>,
    m: usize,
    panels: std::ops::Range<usize>,
    out: SharedOut<'_>,
) {
    let pairs = b.pairs();
    for block in (0..m).step_by(MC) {
        for p in panels.clone() {
            let panel = b.panel(p);
            let c0 = p * PANEL;
            let width = PANEL.min(b.n - c0);
            for r0 in (block..m.min(block + MC)).step_by(MR) {
                let a = &rows[r0 * row..(r0 + MR) * row];
                // SAFETY: a holds MR rows of `row` ≥ 2·pairs values, panel 2·PANEL·pairs.
                let acc = unsafe { kernel(a.as_ptr().cast(), row / 2, panel.as_ptr().cast(), pairs) };
                for (i, acc) in acc.iter().enumerate().take(m - r0) {
                    // SAFETY: row r0 + i < m, columns c0 .. c0 + width < n: this call's own.
                    unsafe { store(acc, bias.map(|bv| &bv[c0..c0 + width]), out.at((r0 + i) * b.n + c0), width) };
                }
            }
        }
    }
}

/// FLOP per second of `VDPBF16PS` over those of `VFMADD231PS` on this core (2 against 1
/// FLOP per lane), from two short dependency-free loops.
pub(super) fn dpbf16_flops_ratio() -> f64 {
    // SAFETY: only called where has_avx512_bf16() holds.
    let time = |f: unsafe fn(usize) -> f32| {
        let start = std::time::Instant::now();
        std::hint::black_box(unsafe { f(20_000) });
        start.elapsed().as_secs_f64()
    };
    let (dp, fma) = (time(dp_loop), time(fma_loop));
    let (dp, fma) = (dp.min(time(dp_loop)), fma.min(time(fma_loop)));
    (2.0 * fma) / dp.max(1e-9)
}

/// `n` rounds of 12 independent `VDPBF16PS`.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn dp_loop(n: usize) -> f32 {
    let mut acc = [_mm512_setzero_ps(); 12];
    // SAFETY: plain register operations on this feature set.
    let (a, b): (__m512bh, __m512bh) = unsafe {
        (
            std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(std::hint::black_box(0x3f80_3f80))),
            std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(std::hint::black_box(0x3c00_3c00))),
        )
    };
    for _ in 0..n {
        for v in acc.iter_mut() {
            *v = _mm512_dpbf16_ps(*v, a, b);
        }
    }
    acc.iter().fold(0.0, |s, &v| s + _mm512_reduce_add_ps(v))
}

/// `n` rounds of 12 independent `VFMADD231PS`.
#[target_feature(enable = "avx512f")]
unsafe fn fma_loop(n: usize) -> f32 {
    let mut acc = [_mm512_setzero_ps(); 12];
    let (a, b) = (_mm512_set1_ps(std::hint::black_box(0.5)), _mm512_set1_ps(std::hint::black_box(0.25)));
    for _ in 0..n {
        for v in acc.iter_mut() {
            *v = _mm512_fmadd_ps(*v, a, b);
        }
    }
    acc.iter().fold(0.0, |s, &v| s + _mm512_reduce_add_ps(v))
}

/// MR × 64 dot products over `pairs` pairs: `a` MR rows of `lda` u32 (bf16 pairs), `b`
/// `pairs` × 64 u32.
///
/// # Safety
/// As [`panels`]; the pointers cover those extents.
#[target_feature(enable = "avx512f,avx512bf16")]
#[inline]
unsafe fn kernel(a: *const u32, lda: usize, b: *const u32, pairs: usize) -> [[__m512; 4]; MR] {
    let mut acc = [[_mm512_setzero_ps(); 4]; MR];
    for q in 0..pairs {
        // SAFETY: pair q of the panel: 64 u32 at b + 64q; of row i: a + i·lda + q.
        unsafe {
            let bq = b.add(q * 64);
            let bv: [__m512bh; 4] = [
                std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(bq.cast())),
                std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(bq.add(16).cast())),
                std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(bq.add(32).cast())),
                std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(bq.add(48).cast())),
            ];
            for (i, acc) in acc.iter_mut().enumerate() {
                let av: __m512bh =
                    std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(*a.add(i * lda + q) as i32));
                for j in 0..4 {
                    acc[j] = _mm512_dpbf16_ps(acc[j], av, bv[j]);
                }
            }
        }
    }
    acc
}

/// Writes `width` ≤ 64 sums (plus `bias`) to `dst`.
///
/// # Safety
/// `dst` covers `width` f32 no other thread touches.
#[target_feature(enable = "avx512f")]
unsafe fn store(acc: &[__m512; 4], bias: Option<&[f32]>, dst: *mut f32, width: usize) {
    for (j, &v) in acc.iter().enumerate() {
        let lo = 16 * j;
        if lo >= width {
            break;
        }
        let mask: __mmask16 = if width - lo >= 16 { 0xffff } else { (1u16 << (width - lo)) - 1 };
        // SAFETY: lanes below `width − lo` of dst + lo and of bias + lo are in bounds.
        unsafe {
            let v = match bias {
                Some(bv) => _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, bv.as_ptr().add(lo))),
                None => v,
            };
            _mm512_mask_storeu_ps(dst.add(lo), mask, v);
        }
    }
}
