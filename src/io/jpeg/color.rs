//! Colour: which space the components are in (libjpeg's `default_decompress_parms`), the
//! conversions libjpeg's `jdcolor.c` makes to RGB or CMYK (its 16-bit fixed-point tables), and
//! PIL's own step from an Adobe CMYK file to RGB (`CMYK;I` unpacking, then `cmyk2rgb`).

/// The colour space of the coded components.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Space {
    /// One component.
    Gray,
    /// Y, Cb, Cr (JFIF).
    YCbCr,
    /// R, G, B as coded.
    Rgb,
    /// C, M, Y, K as coded (Adobe's inverted polarity).
    Cmyk,
    /// Y, Cb, Cr, K (Adobe transform 2).
    Ycck,
}

/// The space libjpeg assumes for `n` components given the JFIF and Adobe markers and the
/// component identifiers.
pub fn space(n: usize, jfif: bool, adobe_transform: Option<u8>, ids: &[u8]) -> Space {
    match n {
        1 => Space::Gray,
        3 if jfif => Space::YCbCr,
        3 => match adobe_transform {
            Some(0) => Space::Rgb,
            Some(_) => Space::YCbCr,
            None if ids == b"RGB" => Space::Rgb,
            None => Space::YCbCr,
        },
        _ => match adobe_transform {
            None | Some(0) => Space::Cmyk,
            Some(_) => Space::Ycck,
        },
    }
}

const SCALEBITS: u32 = 16;
const ONE_HALF: i32 = 1 << (SCALEBITS - 1);

/// `FIX(x)`: `x · 2¹⁶` rounded, as libjpeg writes its colour constants.
const fn fix(x: f64) -> i32 {
    (x * (1 << SCALEBITS) as f64 + 0.5) as i32
}

fn clamp(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}

/// One Y, Cb, Cr triple to R, G, B, exactly as libjpeg's `ycc_rgb_convert`: each of its table
/// entries is one integer expression, computed here in place so loops over it vectorise (the
/// test builds libjpeg's tables and checks every input against them).
#[inline(always)]
fn ycc(y: u8, cb: u8, cr: u8) -> [i32; 3] {
    let (y, xb, xr) = (i32::from(y), i32::from(cb) - 128, i32::from(cr) - 128);
    [
        y + ((fix(1.40200) * xr + ONE_HALF) >> SCALEBITS),
        y + ((-fix(0.34414) * xb + ONE_HALF - fix(0.71414) * xr) >> SCALEBITS),
        y + ((fix(1.77200) * xb + ONE_HALF) >> SCALEBITS),
    ]
}

/// Y, Cb, Cr planes to interleaved RGB, in chunks the compiler vectorises; on x86-64 with AVX2
/// it is compiled for it.
fn ycc_to_rgb(y: &[u8], cb: &[u8], cr: &[u8], out: &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { ycc_to_rgb_avx2(y, cb, cr, out) };
    }
    ycc_to_rgb_any(y, cb, cr, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn ycc_to_rgb_avx2(y: &[u8], cb: &[u8], cr: &[u8], out: &mut [u8]) {
    // SAFETY: AVX2 (this function's feature) implies SSSE3.
    ycc_to_rgb_with(y, cb, cr, out, |p, o| unsafe { interleave_ssse3(p, o) });
}

fn ycc_to_rgb_any(y: &[u8], cb: &[u8], cr: &[u8], out: &mut [u8]) {
    ycc_to_rgb_with(y, cb, cr, out, interleave);
}

/// The conversion over chunks of 16 pixels: computed as planes (which vectorises), then
/// interleaved by `interleave`.
#[inline(always)]
fn ycc_to_rgb_with(y: &[u8], cb: &[u8], cr: &[u8], out: &mut [u8], interleave: impl Fn(&[[u8; 16]; 3], &mut [u8; 48])) {
    const N: usize = 16;
    let chunks = y.len() / N;
    let (ys, cbs, crs) = (y.as_chunks::<N>().0, cb.as_chunks::<N>().0, cr.as_chunks::<N>().0);
    for (out, ((y, cb), cr)) in out.as_chunks_mut::<{ 3 * N }>().0.iter_mut().zip(ys.iter().zip(cbs).zip(crs)) {
        let mut planes = [[0u8; N]; 3];
        for i in 0..N {
            let [r, g, b] = ycc(y[i], cb[i], cr[i]).map(clamp);
            (planes[0][i], planes[1][i], planes[2][i]) = (r, g, b);
        }
        interleave(&planes, out);
    }
    for i in chunks * N..y.len() {
        out[i * 3..i * 3 + 3].copy_from_slice(&ycc(y[i], cb[i], cr[i]).map(clamp));
    }
}

/// Three planes of 16 samples to 16 interleaved triples.
#[inline(always)]
fn interleave(planes: &[[u8; 16]; 3], out: &mut [u8; 48]) {
    for (i, o) in out.chunks_exact_mut(3).enumerate() {
        o.copy_from_slice(&[planes[0][i], planes[1][i], planes[2][i]]);
    }
}

/// `pshufb` places each plane's bytes at every third position of each 16-byte output chunk
/// (index −1 writes 0), and the three are OR-ed.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "ssse3")]
#[inline]
unsafe fn interleave_ssse3(planes: &[[u8; 16]; 3], out: &mut [u8; 48]) {
    use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_or_si128, _mm_shuffle_epi8, _mm_storeu_si128};
    // For output chunk `k` and plane `p`: the source index of output byte `j`, or −1.
    const fn mask(k: usize, p: usize) -> [i8; 16] {
        let mut m = [-1i8; 16];
        let mut j = 0;
        while j < 16 {
            let at = k * 16 + j;
            if at % 3 == p {
                m[j] = (at / 3) as i8;
            }
            j += 1;
        }
        m
    }
    const MASKS: [[[i8; 16]; 3]; 3] = {
        let mut all = [[[0i8; 16]; 3]; 3];
        let mut k = 0;
        while k < 3 {
            let mut p = 0;
            while p < 3 {
                all[k][p] = mask(k, p);
                p += 1;
            }
            k += 1;
        }
        all
    };
    // SAFETY: every load and store is of 16 bytes inside the arrays named; SSSE3 is enabled.
    unsafe {
        let v: [__m128i; 3] = std::array::from_fn(|p| _mm_loadu_si128(planes[p].as_ptr().cast()));
        for (k, masks) in MASKS.iter().enumerate() {
            let m = |p: usize| _mm_loadu_si128(masks[p].as_ptr().cast());
            let chunk = _mm_or_si128(
                _mm_or_si128(_mm_shuffle_epi8(v[0], m(0)), _mm_shuffle_epi8(v[1], m(1))),
                _mm_shuffle_epi8(v[2], m(2)),
            );
            _mm_storeu_si128(out[k * 16..].as_mut_ptr().cast(), chunk);
        }
    }
}

/// PIL's `MULDIV255(a, b)`: `a · b / 255` rounded its way.
#[inline(always)]
fn muldiv255(a: i32, b: i32) -> i32 {
    let t = a * b + 128;
    ((t >> 8) + t) >> 8
}

/// One row as PIL gives it after `convert("RGB")`: from the full-size component rows (each at
/// least `out.len() / 3` samples; gray: `out.len()`) into interleaved RGB, or grey bytes.
pub fn convert_row(space: Space, rows: &[&[u8]], out: &mut [u8]) {
    if space == Space::Gray {
        let n = out.len();
        out.copy_from_slice(&rows[0][..n]);
        return;
    }
    let n = out.len() / 3;
    let (p0, p1, p2) = (&rows[0][..n], &rows[1][..n], &rows[2][..n]);
    let px = out.chunks_exact_mut(3).zip(p0.iter().zip(p1).zip(p2));
    match space {
        Space::Gray => {}
        Space::Rgb => {
            for (o, ((&a, &b), &c)) in px {
                o.copy_from_slice(&[a, b, c]);
            }
        }
        Space::YCbCr => ycc_to_rgb(p0, p1, p2, out),
        Space::Cmyk | Space::Ycck => {
            // libjpeg's CMYK output (YCCK: `ycck_cmyk_convert`), then PIL's `CMYK;I` unpacker
            // inverts every byte, then `cmyk2rgb`: with K′ = 255 − k, nk = 255 − K′ = k.
            for ((o, ((&a, &b), &c)), &k) in px.zip(&rows[3][..n]) {
                let cmy = if space == Space::Cmyk { [a, b, c] } else { ycc(a, b, c).map(|v| clamp(255 - v)) };
                let nk = i32::from(k);
                for (o, c) in o.iter_mut().zip(cmy) {
                    *o = clamp(nk - muldiv255(255 - i32::from(c), nk));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_hold_libjpegs_constants() {
        assert_eq!([fix(1.402), fix(1.772), fix(0.71414), fix(0.34414)], [91881, 116130, 46802, 22554]);
        assert_eq!(ycc(128, 128, 128), [128, 128, 128]);
        assert_eq!(ycc(0, 0, 255).map(clamp), [178, 0, 0]);
        assert_eq!(muldiv255(255, 255), 255);
        // libjpeg's tables (`build_ycc_rgb_table`), built as it builds them; the vectorised
        // conversion agrees with them (every Y and Cb, Cr at six offsets from Y).
        let x = |i: usize| i as i32 - 128;
        let cr_r: Vec<i32> = (0..256).map(|i| (fix(1.40200) * x(i) + ONE_HALF) >> SCALEBITS).collect();
        let cb_b: Vec<i32> = (0..256).map(|i| (fix(1.77200) * x(i) + ONE_HALF) >> SCALEBITS).collect();
        let cr_g: Vec<i32> = (0..256).map(|i| -fix(0.71414) * x(i)).collect();
        let cb_g: Vec<i32> = (0..256).map(|i| -fix(0.34414) * x(i) + ONE_HALF).collect();
        let (mut y, mut cb, mut cr) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..=255u8 {
            for j in 0..=255u8 {
                for k in [0u8, 1, 77, 128, 200, 255] {
                    y.push(i);
                    cb.push(j);
                    cr.push(k.wrapping_add(i));
                }
            }
        }
        // The dispatched conversion (AVX2 where the CPU has it) and the portable one.
        for convert in [ycc_to_rgb, ycc_to_rgb_any] {
            let mut out = vec![0u8; y.len() * 3];
            convert(&y, &cb, &cr, &mut out);
            for (i, o) in out.chunks_exact(3).enumerate() {
                let (yy, b, r) = (i32::from(y[i]), usize::from(cb[i]), usize::from(cr[i]));
                let want = [yy + cr_r[r], yy + ((cb_g[b] + cr_g[r]) >> SCALEBITS), yy + cb_b[b]].map(clamp);
                assert_eq!(o, want, "{} {} {}", y[i], cb[i], cr[i]);
            }
        }
        assert_eq!(muldiv255(128, 255), 128);
    }

    #[test]
    fn colour_space_follows_libjpegs_rules() {
        assert_eq!(space(3, true, Some(0), b"RGB"), Space::YCbCr);
        assert_eq!(space(3, false, Some(0), &[1, 2, 3]), Space::Rgb);
        assert_eq!(space(3, false, None, b"RGB"), Space::Rgb);
        assert_eq!(space(3, false, None, &[0, 1, 2]), Space::YCbCr);
        assert_eq!(space(4, false, Some(2), &[1, 2, 3, 4]), Space::Ycck);
        assert_eq!(space(4, false, None, &[1, 2, 3, 4]), Space::Cmyk);
    }
}
