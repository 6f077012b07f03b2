//! Fused attention (standard, causal, value-value) and patch embedding: PyTorch fixtures on both
//! backends, GPU against the CPU twin on edge and random shapes, errors.

mod common;

use common::{assert_close, assert_close32, cpu, fixture, fixture32, fixture_scalar, gpu, random, read, Tol};
use proptest::prelude::*;
use tokenclip::backend::{AttentionKind, AttentionMask, Backend, BackendError};

fn attention_matches_pytorch<B: Backend>(be: &B) {
    for i in common::cases("attention", "qkv") {
        let (qkv, shape) = fixture32(&format!("attention_{i}.qkv"));
        let heads = fixture_scalar(&format!("attention_{i}.heads")) as usize;
        let mask = if fixture_scalar(&format!("attention_{i}.causal")) != 0.0 {
            AttentionMask::Causal
        } else {
            AttentionMask::None
        };
        let kind = if fixture_scalar(&format!("attention_{i}.value_value")) != 0.0 {
            AttentionKind::ValueValue
        } else {
            AttentionKind::QueryKey
        };
        let (want, _) = fixture(&format!("attention_{i}.y"));
        let got = read(be, &be.attention(&be.upload(&qkv, &shape).unwrap(), heads, kind, mask).unwrap());
        assert_close(
            &format!("attention case {i} {shape:?} heads {heads} {kind:?} {mask:?}"),
            &got,
            &want,
            Tol::MATMUL,
        );
    }
}
on_both_backends!(attention_matches_pytorch, super::attention_matches_pytorch);

fn patch_embed_matches_pytorch<B: Backend>(be: &B) {
    for i in common::cases("patch_embed", "image") {
        let (img, si) = fixture32(&format!("patch_embed_{i}.image"));
        let (w, sw) = fixture32(&format!("patch_embed_{i}.weight"));
        let (want, _) = fixture(&format!("patch_embed_{i}.y"));
        let got = read(be, &be.patch_embed(&be.upload(&img, &si).unwrap(), &be.upload(&w, &sw).unwrap()).unwrap());
        assert_close(&format!("F.conv2d stride p case {i} {si:?} {sw:?}"), &got, &want, Tol::MATMUL);
    }
}
on_both_backends!(patch_embed_matches_pytorch, super::patch_embed_matches_pytorch);

#[allow(clippy::too_many_arguments)]
fn run<B: Backend>(
    be: &B,
    batch: usize,
    tokens: usize,
    width: usize,
    heads: usize,
    kind: AttentionKind,
    mask: AttentionMask,
    seed: u64,
) -> Vec<f32> {
    let shape = if batch == 1 { vec![tokens, 3 * width] } else { vec![batch, tokens, 3 * width] };
    let qkv = be.upload(&random(batch * tokens * 3 * width, seed, -2.0, 2.0), &shape).unwrap();
    read(be, &be.attention(&qkv, heads, kind, mask).unwrap())
}

fn compare(
    batch: usize,
    tokens: usize,
    width: usize,
    heads: usize,
    kind: AttentionKind,
    mask: AttentionMask,
    seed: u64,
) {
    let Some(g) = gpu("attention_gpu_matches_cpu") else { return };
    let what = format!("B {batch} T {tokens} W {width} heads {heads} {kind:?} {mask:?}");
    assert_close32(
        &what,
        &run(g, batch, tokens, width, heads, kind, mask, seed),
        &run(&cpu(), batch, tokens, width, heads, kind, mask, seed),
        Tol::MATMUL,
    );
}

#[test]
fn attention_gpu_matches_cpu_edge_shapes() {
    use AttentionKind::*;
    use AttentionMask::*;
    for (b, t, w, h) in [
        (1, 1, 4, 1),
        (1, 2, 8, 2),
        (1, 15, 16, 1),
        (1, 16, 16, 1),
        (1, 17, 48, 3),
        (1, 63, 64, 2),
        (1, 64, 64, 2),
        (1, 65, 64, 2),
        (2, 77, 64, 1),
        (1, 50, 256, 2),
        (1, 130, 40, 4),
    ] {
        for (kind, mask) in [(QueryKey, None), (ValueValue, None), (QueryKey, Causal)] {
            compare(b, t, w, h, kind, mask, (t * 131 + w) as u64);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]
    #[test]
    fn attention_gpu_matches_cpu_random_shapes(batch in 1usize..3, tokens in 1usize..150, head_dim in 1usize..129, heads in 1usize..4, vv in any::<bool>(), causal in any::<bool>(), seed in any::<u64>()) {
        let kind = if vv { AttentionKind::ValueValue } else { AttentionKind::QueryKey };
        let mask = if causal { AttentionMask::Causal } else { AttentionMask::None };
        compare(batch, tokens, head_dim * heads, heads, kind, mask, seed);
    }
}

#[test]
fn patch_embed_gpu_matches_cpu_edge_shapes() {
    let Some(g) = gpu("patch_embed_gpu_matches_cpu_edge_shapes") else { return };
    for (c, h, w, o, p) in
        [(3, 14, 14, 8, 14), (3, 45, 31, 16, 14), (1, 5, 5, 1, 1), (3, 32, 32, 64, 16), (3, 33, 65, 7, 4)]
    {
        let img = random(c * h * w, 1, -1.0, 1.0);
        let wt = random(o * c * p * p, 2, -0.1, 0.1);
        for f16 in [false, true] {
            let what = format!("patch_embed {c}x{h}x{w} -> {o} p{p}, f16 weights {f16}");
            let got = run_patch(g, &img, [c, h, w], &wt, [o, c, p, p], f16);
            assert_close32(&what, &got, &run_patch(&cpu(), &img, [c, h, w], &wt, [o, c, p, p], f16), Tol::MATMUL);
        }
    }
}

fn run_patch<B: Backend>(
    be: &B,
    img: &[f32],
    img_shape: [usize; 3],
    wt: &[f32],
    w_shape: [usize; 4],
    f16: bool,
) -> Vec<f32> {
    let weight = if f16 {
        let halves: Vec<half::f16> = wt.iter().map(|&v| half::f16::from_f32(v)).collect();
        be.upload_f16(&halves, &w_shape).unwrap()
    } else {
        be.upload(wt, &w_shape).unwrap()
    };
    read(be, &be.patch_embed(&be.upload(img, &img_shape).unwrap(), &weight).unwrap())
}

fn attention_rejects_bad_shapes<B: Backend>(be: &B) {
    let qkv = be.upload(&[0.0; 20], &[2, 10]).unwrap();
    let err = be.attention(&qkv, 1, AttentionKind::QueryKey, AttentionMask::None).unwrap_err();
    assert!(matches!(err, BackendError::ShapeMismatch { op: "attention", .. }), "{err}");
    let qkv = be.upload(&[0.0; 18], &[2, 9]).unwrap();
    let err = be.attention(&qkv, 2, AttentionKind::QueryKey, AttentionMask::None).unwrap_err();
    assert!(matches!(err, BackendError::InvalidArgument { op: "attention", .. }), "{err}");
    let qkv = be.upload(&vec![0.0; 3 * 129], &[1, 3 * 129]).unwrap();
    let err = be.attention(&qkv, 1, AttentionKind::QueryKey, AttentionMask::None).unwrap_err();
    assert!(matches!(err, BackendError::LimitExceeded { what: "head width", .. }), "{err}");
    let img = be.upload(&[0.0; 12], &[3, 2, 2]).unwrap();
    let w = be.upload(&[0.0; 27], &[1, 3, 3, 3]).unwrap();
    let err = be.patch_embed(&img, &w).unwrap_err();
    assert!(matches!(err, BackendError::ShapeMismatch { op: "patch_embed", operand: "image", .. }), "{err}");
}
on_both_backends!(attention_rejects_bad_shapes, super::attention_rejects_bad_shapes);
