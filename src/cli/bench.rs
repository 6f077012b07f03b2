//! `tokenclip bench ops`: time each op on each backend and print GFLOP/s.
//!
//! Times are medians of `--reps` runs after one warm-up. GPU times are wall-clock from recording
//! to the device finishing (submit + wait), so they include launch overhead, as a user sees it.

use std::time::Instant;

use clap::{Args, ValueEnum};
use tokenclip::backend::cpu::CpuBackend;
use tokenclip::backend::gpu::GpuBackend;
use tokenclip::backend::{AttentionKind, AttentionMask, BLayout, Backend, SinkhornParams};
use tokenclip::BackendChoice;

use super::Global;

/// What `bench` measures.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum BenchTarget {
    /// Single ops at CLIP shapes.
    Ops,
    /// One training step (batch 8, M = 4) and feature extraction with `--model`.
    Train,
}

/// Shape sets.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub enum ShapeSet {
    /// ViT-L/14 at 518 px (1370 tokens, width 1024) and a 1024³ GEMM.
    Large,
    /// Small shapes for slow software devices (lavapipe, SwiftShader).
    Small,
    /// ViT-B/16 at 224 px (197 tokens, width 768).
    B16,
}

/// `tokenclip bench` arguments.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to measure: `ops`, or nothing with `--model` (image encoding with that model).
    target: Option<BenchTarget>,
    /// The model (a name, a file or a URL): time its detection or its image encoder.
    #[arg(long)]
    model: Option<String>,
    /// Image size for `--model` (default: the model's detection size).
    #[arg(long)]
    image_size: Option<usize>,
    /// Timed repetitions per op (the median is reported).
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Which shapes.
    #[arg(long, value_enum, default_value = "large")]
    shapes: ShapeSet,
    /// Only ops whose name contains this.
    #[arg(long)]
    filter: Option<String>,
    /// With a detection model: also time one image op by op (each op waited for), by op
    /// family and by model part (each vision layer, transport, post-processing).
    #[arg(long)]
    profile: bool,
    /// With a detection model: time batches of this many images in one pass against as many
    /// single passes (what `serve --max-batch` gains), and check the results agree.
    #[arg(long)]
    batch: Option<usize>,
}

/// One op at one shape: its name, its FLOP count, and how to run it once.
struct Case {
    name: String,
    flops: f64,
    kind: CaseKind,
}

enum CaseKind {
    Matmul {
        m: usize,
        k: usize,
        n: usize,
        layout: BLayout,
        f16: bool,
    },
    Attention {
        tokens: usize,
        width: usize,
        heads: usize,
        kind: AttentionKind,
    },
    LayerNorm {
        rows: usize,
        cols: usize,
    },
    Softmax {
        rows: usize,
        cols: usize,
    },
    PatchEmbed {
        size: usize,
        patch: usize,
        width: usize,
    },
    MapPost {
        grid: usize,
        size: usize,
    },
    Sinkhorn {
        n: usize,
        m: usize,
    },
    /// One layer of few-shot scoring: patches `[n, d]` against a memory `[d, cols]`.
    FewShot {
        n: usize,
        d: usize,
        cols: usize,
    },
}

fn cases(set: ShapeSet) -> Vec<Case> {
    let (t, w, h, big) = match set {
        ShapeSet::Large => (1370, 1024, 16, 1024),
        ShapeSet::Small => (197, 256, 4, 256),
        ShapeSet::B16 => (197, 768, 12, 768),
    };
    let mm = |m: usize, k: usize, n: usize, layout, f16: bool| Case {
        name: format!(
            "matmul {m}x{k}x{n}{}{}",
            if layout == BLayout::Transposed { " (bT)" } else { "" },
            if f16 { " f16-weights" } else { "" }
        ),
        flops: 2.0 * (m * k * n) as f64,
        kind: CaseKind::Matmul { m, k, n, layout, f16 },
    };
    let grid = if set == ShapeSet::Large { 37 } else { 14 };
    let size = if set == ShapeSet::Large { 518 } else { 224 };
    // CLIP's embedding width after the projection (ViT-L/14: 768, ViT-B/16: 512).
    let embed = match set {
        ShapeSet::Large => 768,
        ShapeSet::Small => 256,
        ShapeSet::B16 => 512,
    };
    let (n, cols) = (grid * grid, 4 * grid * grid);
    vec![
        mm(big, big, big, BLayout::RowMajor, false),
        mm(t, w, 4 * w, BLayout::RowMajor, false),
        mm(t, w, 4 * w, BLayout::Transposed, false),
        mm(t, w, 4 * w, BLayout::Transposed, true),
        mm(t, 4 * w, w, BLayout::Transposed, false),
        Case {
            name: format!("attention T={t} W={w} heads={h}"),
            flops: 4.0 * (t * t * w) as f64,
            kind: CaseKind::Attention { tokens: t, width: w, heads: h, kind: AttentionKind::QueryKey },
        },
        Case {
            name: format!("attention v-v T={t} W={w} heads={h}"),
            flops: 4.0 * (t * t * w) as f64,
            kind: CaseKind::Attention { tokens: t, width: w, heads: h, kind: AttentionKind::ValueValue },
        },
        Case {
            name: format!("layer_norm {t}x{w}"),
            flops: 8.0 * (t * w) as f64,
            kind: CaseKind::LayerNorm { rows: t, cols: w },
        },
        Case {
            name: format!("softmax {}x{t}", h * t),
            flops: 5.0 * (h * t * t) as f64,
            kind: CaseKind::Softmax { rows: h * t, cols: t },
        },
        Case {
            name: format!("patch_embed {size}px p14 -> {w}"),
            flops: 2.0 * ((size / 14) * (size / 14) * 3 * 14 * 14 * w) as f64,
            kind: CaseKind::PatchEmbed { size, patch: 14, width: w },
        },
        Case {
            name: format!("resize {grid}->{size} + blur σ=4"),
            flops: (2 * 8 + 2 * 2 * 33) as f64 * (size * size) as f64,
            kind: CaseKind::MapPost { grid, size },
        },
        Case {
            name: format!("sinkhorn {}x4 (≤100 iters)", grid * grid),
            flops: 100.0 * 2.0 * 4.0 * 8.0 * (grid * grid) as f64,
            kind: CaseKind::Sinkhorn { n: grid * grid, m: 4 },
        },
        Case {
            name: format!("few-shot layer {n}x{embed} vs k=4 ({cols})"),
            flops: 2.0 * (n * embed * cols) as f64,
            kind: CaseKind::FewShot { n, d: embed, cols },
        },
    ]
}

/// Deterministic pseudo-random values in [-1, 1).
pub fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

/// Runs one case once on `b`; the result is left queued (the caller syncs).
fn run_case<B: Backend>(b: &B, c: &CaseKind, inputs: &[B::Tensor]) -> Result<B::Tensor, tokenclip::BackendError> {
    match *c {
        CaseKind::Matmul { layout, .. } => b.matmul(&inputs[0], &inputs[1], None, layout),
        CaseKind::Attention { heads, kind, .. } => b.attention(&inputs[0], heads, kind, AttentionMask::None),
        CaseKind::LayerNorm { .. } => b.layer_norm(&inputs[0], &inputs[1], &inputs[2], 1e-5),
        CaseKind::Softmax { .. } => b.softmax(&inputs[0]),
        CaseKind::PatchEmbed { .. } => b.patch_embed(&inputs[0], &inputs[1]),
        CaseKind::MapPost { size, .. } => b.gaussian_blur(&b.resize_bilinear(&inputs[0], size, size)?, 4.0),
        CaseKind::Sinkhorn { .. } => b.sinkhorn(&inputs[0], SinkhornParams::default()),
        CaseKind::FewShot { .. } => tokenclip::tokenclip::few_shot::nearest_similarity(b, &inputs[0], &inputs[1])
            .map_err(|e| match e {
                tokenclip::Error::Backend(b) => b,
                other => tokenclip::BackendError::InvalidArgument { op: "few_shot", message: other.to_string() },
            }),
    }
}

fn make_inputs<B: Backend>(b: &B, c: &CaseKind) -> Result<Vec<B::Tensor>, tokenclip::BackendError> {
    let up = |shape: &[usize], seed| b.upload(&values(shape.iter().product(), seed), shape);
    Ok(match *c {
        CaseKind::Matmul { m, k, n, layout, f16 } => {
            let bshape = if layout == BLayout::Transposed { [n, k] } else { [k, n] };
            let w = if f16 {
                let h: Vec<half::f16> = values(n * k, 2).iter().map(|&v| half::f16::from_f32(v)).collect();
                b.upload_f16(&h, &bshape)?
            } else {
                up(&bshape, 2)?
            };
            vec![up(&[m, k], 1)?, w]
        }
        CaseKind::Attention { tokens, width, .. } => vec![up(&[tokens, 3 * width], 3)?],
        CaseKind::LayerNorm { rows, cols } => vec![up(&[rows, cols], 4)?, up(&[cols], 5)?, up(&[cols], 6)?],
        CaseKind::Softmax { rows, cols } => vec![up(&[rows, cols], 7)?],
        CaseKind::PatchEmbed { size, patch, width } => {
            vec![up(&[3, size, size], 8)?, up(&[width, 3, patch, patch], 9)?]
        }
        CaseKind::MapPost { grid, .. } => vec![up(&[1, grid, grid], 10)?],
        CaseKind::FewShot { n, d, cols } => vec![up(&[n, d], 12)?, up(&[d, cols], 13)?],
        CaseKind::Sinkhorn { n, m } => {
            let cost: Vec<f32> = values(n * m, 11).iter().map(|v| 1.0 + 0.5 * v).collect();
            vec![b.upload(&cost, &[n, m])?]
        }
    })
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn bench_backend<B: Backend>(
    b: &B,
    sync: impl Fn(&B, &B::Tensor) -> anyhow::Result<()>,
    args: &BenchArgs,
) -> anyhow::Result<()> {
    println!("\n{}", b.describe());
    println!("  {:<44} {:>10} {:>10}", "op", "ms", "GFLOP/s");
    for case in cases(args.shapes) {
        if args.filter.as_ref().is_some_and(|f| !case.name.contains(f.as_str())) {
            continue;
        }
        let inputs = make_inputs(b, &case.kind)?;
        let warm = run_case(b, &case.kind, &inputs)?;
        sync(b, &warm)?;
        let mut times = Vec::with_capacity(args.reps);
        for _ in 0..args.reps.max(1) {
            let start = Instant::now();
            let out = run_case(b, &case.kind, &inputs)?;
            sync(b, &out)?;
            times.push(start.elapsed().as_secs_f64());
        }
        let t = median(times);
        println!("  {:<44} {:>10.3} {:>10.1}", case.name, t * 1e3, case.flops / t / 1e9);
    }
    Ok(())
}

/// Runs the benchmark on the backends `--backend` selects (auto: every one available).
pub fn run(g: &Global, args: &BenchArgs) -> anyhow::Result<()> {
    if args.profile && args.target.is_some() {
        anyhow::bail!(
            "--profile goes with `bench --model M` (a detection model), not with `bench ops` or `bench train`"
        );
    }
    match (&args.target, &args.model) {
        (None, Some(model)) => {
            return super::bench_model::run_model(g, model, args.image_size, args.reps, args.profile, args.batch)
        }
        (None, None) => anyhow::bail!("say what to measure: `bench ops`, `bench --model M` or `bench train --model M`"),
        (Some(BenchTarget::Train), Some(model)) => {
            let file = tokenclip::clip::model_file::ModelFile::open(&super::models::model_path(g, model)?)?;
            let device = super::open_device(g)?;
            return super::with_backend!(&device, be => super::bench_train::bench_train(be, &file, args.reps));
        }
        (Some(BenchTarget::Train), None) => anyhow::bail!("`bench train` needs --model"),
        (Some(BenchTarget::Ops), Some(_)) => anyhow::bail!("`bench ops` takes no --model"),
        (Some(BenchTarget::Ops), None) => {}
    }
    if g.backend != BackendChoice::Gpu {
        bench_backend(&CpuBackend::with_precision(g.precision), |_, _| Ok(()), args)?;
    }
    if g.backend != BackendChoice::Cpu {
        match pollster::block_on(GpuBackend::new(&g.gpu)) {
            Ok(gpu) => bench_backend(&gpu, |b, _| Ok(b.wait()?), args)?,
            Err(e) if g.backend == BackendChoice::Auto => println!("\nGPU skipped: {e}"),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
