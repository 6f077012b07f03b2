//! The GPU runtime around the kernels: buffer reuse across passes, ordering of uploads against
//! pending work, adapter choice, and limits reported as typed errors.

mod common;

use common::{assert_close32, gpu, random, read, Tol};
use tokenclip::backend::gpu::{GpuBackend, GpuOptions};
use tokenclip::backend::{AttentionKind, AttentionMask, BLayout, Backend, BackendError};

/// A miniature transformer block: what a forward pass asks of the pool and the recorder.
fn block(g: &GpuBackend, x: &[f32], w: &[f32]) -> Vec<f32> {
    let x = g.upload(x, &[37, 48]).unwrap();
    let wq = g.upload(w, &[144, 48]).unwrap();
    let ones = g.upload(&[1.0; 48], &[48]).unwrap();
    let zeros = g.upload(&[0.0; 48], &[48]).unwrap();
    let h = g.layer_norm(&x, &ones, &zeros, 1e-5).unwrap();
    let qkv = g.matmul(&h, &wq, None, BLayout::Transposed).unwrap();
    let a = g.attention(&qkv, 3, AttentionKind::QueryKey, AttentionMask::None).unwrap();
    let y = g.add(&x, &g.quick_gelu(&a).unwrap()).unwrap();
    read(g, &y)
}

#[test]
fn repeated_passes_create_no_new_buffers() {
    if gpu("repeated_passes_create_no_new_buffers").is_none() {
        return;
    }
    // A backend of its own: the shared one's pool also serves the tests running beside this one,
    // whose allocations would be counted here.
    let own = pollster::block_on(GpuBackend::new(&GpuOptions::default())).unwrap();
    let g = &own;
    let (x, w) = (random(37 * 48, 1, -1.0, 1.0), random(144 * 48, 2, -0.2, 0.2));
    let first = block(g, &x, &w);
    let created = g.buffers_created();
    for _ in 0..3 {
        assert_eq!(block(g, &x, &w), first, "a repeated pass must give identical results");
    }
    assert_eq!(g.buffers_created(), created, "repeated passes of the same shapes must reuse pooled buffers");
}

#[test]
fn upload_after_drop_does_not_corrupt_pending_work() {
    let Some(g) = gpu("upload_after_drop_does_not_corrupt_pending_work") else { return };
    let data = random(4096, 3, -1.0, 1.0);
    let x = g.upload(&data, &[4096]).unwrap();
    let y = g.scale(&x, 2.0).unwrap(); // recorded, not submitted
    drop(x); // its buffer goes back to the pool while the dispatch still reads it
    let _z = g.upload(&vec![99.0; 4096], &[4096]).unwrap(); // likely the same buffer
    let want: Vec<f32> = data.iter().map(|v| v * 2.0).collect();
    assert_close32("scale after the input's buffer was recycled", &read(g, &y), &want, Tol::EXACT);
}

#[test]
fn unknown_adapter_name_lists_what_exists() {
    if gpu("unknown_adapter_name_lists_what_exists").is_none() {
        return;
    }
    let err =
        pollster::block_on(GpuBackend::new(&GpuOptions::default().with_adapter("no-such-adapter-xyz"))).unwrap_err();
    match err {
        BackendError::AdapterNotFound { wanted, seen } => {
            assert_eq!(wanted, "no-such-adapter-xyz");
            assert!(!seen.is_empty());
        }
        other => panic!("expected AdapterNotFound, got {other}"),
    }
}

#[test]
fn output_over_binding_limit_is_a_typed_error() {
    let Some(g) = gpu("output_over_binding_limit_is_a_typed_error") else { return };
    let limit = g.context().limits.max_storage_buffer_binding_size.min(g.context().limits.max_buffer_size);
    // An outer product whose [n, n] output needs more bytes than one binding may hold.
    let n = ((limit / 4) as f64).sqrt() as usize + 1;
    let a = g.upload(&vec![1.0; n], &[n, 1]).unwrap();
    let b = g.upload(&vec![1.0; n], &[1, n]).unwrap();
    let err = g.matmul(&a, &b, None, BLayout::RowMajor).unwrap_err();
    assert!(matches!(err, BackendError::LimitExceeded { op: "matmul", .. }), "{err}");
    assert!(err.to_string().contains("max_storage_buffer_binding_size"), "{err}");
}
