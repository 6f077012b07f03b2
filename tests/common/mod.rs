//! Shared test helpers: the one GPU backend per test binary, the CPU oracle, seeded inputs,
//! `assert_close`, and the PyTorch/SciPy fixtures.
#![allow(dead_code)] // each test binary uses a different subset

pub mod cli;
pub mod clip;
pub mod dataset;
pub mod detect;
pub mod fake_hub;
pub mod serve;

use std::sync::OnceLock;

use tokenclip::backend::cpu::CpuBackend;
use tokenclip::backend::gpu::{GpuBackend, GpuOptions};
use tokenclip::backend::Backend;

/// Set by `.ci/run`: a missing adapter fails the GPU tests instead of skipping them.
pub const REQUIRE_GPU_ENV: &str = "TOKENCLIP_REQUIRE_GPU";

/// The GPU backend shared by this test binary, or `None` (after printing `SKIPPED`) when this
/// machine has no adapter. Panics when none exists and `TOKENCLIP_REQUIRE_GPU=1`.
pub fn gpu(test: &str) -> Option<&'static GpuBackend> {
    static GPU: OnceLock<Result<GpuBackend, String>> = OnceLock::new();
    let gpu = GPU.get_or_init(|| {
        let opts = GpuOptions::from_env().map_err(|e| e.to_string())?;
        pollster::block_on(GpuBackend::new(&opts)).map_err(|e| e.to_string())
    });
    match gpu {
        Ok(g) => Some(g),
        Err(e) => {
            if std::env::var(REQUIRE_GPU_ENV).is_ok_and(|v| v == "1") {
                let seen = pollster::block_on(tokenclip::backend::gpu::list_adapters());
                panic!("{test}: no usable wgpu adapter but {REQUIRE_GPU_ENV}=1: {e}; adapters seen: {seen:?}");
            }
            eprintln!("SKIPPED {test}: no wgpu adapter ({e})");
            None
        }
    }
}

/// The CPU backend (the oracle).
pub fn cpu() -> CpuBackend {
    CpuBackend::new()
}

/// Reads a tensor back, blocking.
pub fn read<B: Backend>(b: &B, t: &B::Tensor) -> Vec<f32> {
    pollster::block_on(b.read(t)).expect("readback")
}

/// A tolerance, burn's rule: |got − want| ≤ max(rel · |got + want|, abs).
#[derive(Debug, Clone, Copy)]
pub struct Tol {
    /// Relative part.
    pub rel: f64,
    /// Absolute floor.
    pub abs: f64,
}

impl Tol {
    /// Bit-exact.
    pub const EXACT: Tol = Tol { rel: 0.0, abs: 0.0 };
    /// Elementwise arithmetic.
    pub const ELEMENTWISE: Tol = Tol { rel: 1e-6, abs: 1e-6 };
    /// layer_norm, softmax, l2_normalize.
    pub const NORM: Tol = Tol { rel: 1e-4, abs: 1e-5 };
    /// matmul and attention with f32 accumulation.
    pub const MATMUL: Tol = Tol { rel: 1e-4, abs: 1e-4 };
    /// Sinkhorn plans and scores.
    pub const TRANSPORT: Tol = Tol { rel: 1e-4, abs: 1e-6 };
}

/// Compares element by element; on failure reports how many differ, the mean and max error and
/// the worst index, with both values there.
#[track_caller]
#[allow(clippy::neg_cmp_op_on_partial_ord)] // `!(a <= b)` on purpose: NaN must count as a failure
pub fn assert_close(what: &str, got: &[f32], want: &[f64], tol: Tol) {
    assert_eq!(got.len(), want.len(), "{what}: length {} vs expected {}", got.len(), want.len());
    let mut bad = 0usize;
    let (mut worst, mut worst_i, mut sum) = (0.0f64, 0usize, 0.0f64);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let g = f64::from(g);
        let err = (g - w).abs();
        let allowed = (tol.rel * (g + w).abs()).max(tol.abs);
        if !(err <= allowed) {
            bad += 1;
        }
        sum += err;
        if !(err <= worst) {
            worst = err;
            worst_i = i;
        }
    }
    assert!(
        bad == 0,
        "{what}: {bad} of {} elements outside rel {} / abs {}; mean abs error {:.3e}, max {:.3e} at [{worst_i}]: got {} want {}",
        got.len(), tol.rel, tol.abs, sum / got.len() as f64, worst, got[worst_i], want[worst_i]
    );
}

/// [`assert_close`] against f32 expectations.
#[track_caller]
pub fn assert_close32(what: &str, got: &[f32], want: &[f32], tol: Tol) {
    let want: Vec<f64> = want.iter().map(|&v| f64::from(v)).collect();
    assert_close(what, got, &want, tol);
}

/// Seeded xorshift values, uniform in `[lo, hi)`.
pub fn random(n: usize, seed: u64, lo: f32, hi: f32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD1B5_4A32_D192_ED03;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let u = (s >> 40) as f32 / (1u64 << 24) as f32;
            lo + (hi - lo) * u
        })
        .collect()
}

/// One tensor of `tests/fixtures/ops_reference.safetensors` (made by
/// `tools/make_op_fixtures.py` from PyTorch and SciPy): values as f64 and the shape.
pub fn fixture(name: &str) -> (Vec<f64>, Vec<usize>) {
    static FILE: OnceLock<Vec<u8>> = OnceLock::new();
    let bytes = FILE.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ops_reference.safetensors");
        std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}; regenerate with python3 tools/make_op_fixtures.py"))
    });
    let st = safetensors::SafeTensors::deserialize(bytes).expect("fixture file parses");
    let t = st.tensor(name).unwrap_or_else(|_| panic!("fixture tensor {name} missing"));
    let data = t.data();
    let values = match t.dtype() {
        safetensors::Dtype::F64 => {
            data.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect()
        }
        safetensors::Dtype::F32 => {
            data.chunks_exact(4).map(|c| f64::from(f32::from_le_bytes(c.try_into().expect("4 bytes")))).collect()
        }
        other => panic!("fixture {name}: unexpected dtype {other:?}"),
    };
    (values, t.shape().to_vec())
}

/// A fixture tensor as f32 (inputs are stored as f32, so this is exact for them).
pub fn fixture32(name: &str) -> (Vec<f32>, Vec<usize>) {
    let (v, s) = fixture(name);
    (v.iter().map(|&x| x as f32).collect(), s)
}

/// A scalar fixture.
pub fn fixture_scalar(name: &str) -> f64 {
    fixture(name).0[0]
}

/// Whether the fixture file has a tensor of this name (cases are numbered from 0).
pub fn has_fixture(name: &str) -> bool {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/ops_reference.safetensors");
    let bytes = std::fs::read(path).expect("fixture file");
    safetensors::SafeTensors::deserialize(&bytes).expect("parses").tensor(name).is_ok()
}

/// Every case index `i` for which `{prefix}_{i}.{probe}` exists.
pub fn cases(prefix: &str, probe: &str) -> Vec<usize> {
    let found: Vec<usize> = (0..).take_while(|i| has_fixture(&format!("{prefix}_{i}.{probe}"))).collect();
    assert!(!found.is_empty(), "no fixture cases named {prefix}_0.{probe}");
    found
}

/// Stamps a generic test body `fn(&B)` into `name::cpu` and `name::gpu` tests.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident, $body:path) => {
        mod $name {
            #[test]
            fn cpu() {
                $body(&super::common::cpu());
            }
            #[test]
            fn gpu() {
                if let Some(g) = super::common::gpu(concat!(module_path!(), "::gpu")) {
                    $body(g);
                }
            }
        }
    };
}

/// A PNG that claims `width × height` pixels and holds none (for size-limit tests).
pub fn png_with_size(width: u32, height: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend(width.to_be_bytes());
    ihdr.extend(height.to_be_bytes());
    ihdr.extend([8, 2, 0, 0, 0]);
    png.extend(13u32.to_be_bytes());
    png.extend(&ihdr);
    png.extend(crc32(&ihdr).to_be_bytes());
    // An empty IDAT and IEND, as a lying encoder might write.
    for chunk in [&b"IDAT"[..], &b"IEND"[..]] {
        png.extend(0u32.to_be_bytes());
        png.extend(chunk);
        png.extend(crc32(chunk).to_be_bytes());
    }
    png
}

/// CRC-32 as PNG chunks use it.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { 0xedb8_8320 ^ (crc >> 1) } else { crc >> 1 };
        }
    }
    !crc
}
