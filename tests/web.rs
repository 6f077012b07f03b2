//! The kernels in a real browser: headless Chromium's WebGPU (SwiftShader in CI) against the CPU
//! twin compiled to wasm. Run with `CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
//! cargo test --target wasm32-unknown-unknown --test web` (see `.ci/run`). The JS API's own tests
//! (`src/web.rs`) are in `web/api.rs`. A missing WebGPU adapter fails these tests: in the browser there is no CPU-only CI mode to skip to.
#![cfg(target_arch = "wasm32")]

use tokenclip::backend::cpu::CpuBackend;
use tokenclip::backend::gpu::{GpuBackend, GpuOptions};
use tokenclip::backend::{AttentionKind, AttentionMask, BLayout, Backend};
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// The JS API: load, detect, cache, overlays, bad inputs.
#[path = "web/api.rs"]
mod api;

/// GPU faults: fail-over to the CPU under "auto", typed errors under "webgpu".
#[path = "web/failover.rs"]
mod failover;

/// Few-shot references set in the browser.
#[path = "web/references.rs"]
mod references;

fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2_654_435_761) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 8) as f32 / (1u32 << 24) as f32 * 2.0 - 1.0
        })
        .collect()
}

fn assert_close(what: &str, got: &[f32], want: &[f32], rel: f32, abs: f32) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let allowed = (rel * (g + w).abs()).max(abs);
        assert!((g - w).abs() <= allowed, "{what}: [{i}] got {g}, want {w} (rel {rel}, abs {abs})");
    }
}

async fn gpu() -> GpuBackend {
    match GpuBackend::new(&GpuOptions::default()).await {
        Ok(g) => g,
        Err(e) => panic!("no WebGPU adapter in this browser (launch Chromium with --enable-unsafe-webgpu): {e}"),
    }
}

#[wasm_bindgen_test]
async fn matmul_and_layer_norm_in_browser_match_cpu() {
    let g = gpu().await;
    let c = CpuBackend::new();
    let (m, k, n) = (37, 70, 65);
    let (a, w, bias) = (values(m * k, 1), values(n * k, 2), values(n, 3));
    let gy = g
        .matmul(
            &g.upload(&a, &[m, k]).unwrap(),
            &g.upload(&w, &[n, k]).unwrap(),
            Some(&g.upload(&bias, &[n]).unwrap()),
            BLayout::Transposed,
        )
        .unwrap();
    let cy = c
        .matmul(
            &c.upload(&a, &[m, k]).unwrap(),
            &c.upload(&w, &[n, k]).unwrap(),
            Some(&c.upload(&bias, &[n]).unwrap()),
            BLayout::Transposed,
        )
        .unwrap();
    let (gamma, beta) = (values(n, 4), values(n, 5));
    let gz = g.layer_norm(&gy, &g.upload(&gamma, &[n]).unwrap(), &g.upload(&beta, &[n]).unwrap(), 1e-5).unwrap();
    let cz = c.layer_norm(&cy, &c.upload(&gamma, &[n]).unwrap(), &c.upload(&beta, &[n]).unwrap(), 1e-5).unwrap();
    assert_close("matmul (bT, bias)", &g.read(&gy).await.unwrap(), &c.read(&cy).await.unwrap(), 1e-4, 1e-4);
    assert_close("layer_norm", &g.read(&gz).await.unwrap(), &c.read(&cz).await.unwrap(), 1e-4, 1e-5);
}

#[wasm_bindgen_test]
async fn attention_and_transport_in_browser_match_cpu() {
    let g = gpu().await;
    let c = CpuBackend::new();
    let (t, w, heads) = (50, 64, 2);
    let qkv = values(t * 3 * w, 6);
    for kind in [AttentionKind::QueryKey, AttentionKind::ValueValue] {
        let gy = g.attention(&g.upload(&qkv, &[t, 3 * w]).unwrap(), heads, kind, AttentionMask::None).unwrap();
        let cy = c.attention(&c.upload(&qkv, &[t, 3 * w]).unwrap(), heads, kind, AttentionMask::None).unwrap();
        assert_close(
            &format!("attention {kind:?}"),
            &g.read(&gy).await.unwrap(),
            &c.read(&cy).await.unwrap(),
            1e-4,
            1e-4,
        );
    }
    let cost: Vec<f32> = values(300 * 4, 7).iter().map(|v| 1.0 + v).collect();
    let p = Default::default();
    let gp = g.sinkhorn(&g.upload(&cost, &[300, 4]).unwrap(), p).unwrap();
    let cp = c.sinkhorn(&c.upload(&cost, &[300, 4]).unwrap(), p).unwrap();
    assert_close("sinkhorn", &g.read(&gp).await.unwrap(), &c.read(&cp).await.unwrap(), 1e-4, 1e-6);
}
