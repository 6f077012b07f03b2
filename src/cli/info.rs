//! `tokenclip info`: adapters, the chosen one, its limits and features.

use tokenclip::backend::cpu::CpuBackend;
use tokenclip::backend::gpu::{list_adapters, GpuBackend};
use tokenclip::{Backend, BackendChoice};

use super::Global;

/// `tokenclip info` arguments.
#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    /// Also describe this model (a name, a file or a URL; checked as a load would check it).
    #[arg(long)]
    model: Option<String>,
}

/// Prints what this machine offers and what `--backend`/`--adapter` would pick.
pub fn run(g: &Global, args: &InfoArgs) -> anyhow::Result<()> {
    if let Some(model) = &args.model {
        print_model(&super::models::model_path(g, model)?)?;
    }
    let adapters = pollster::block_on(list_adapters());
    println!("GPU adapters ({}):", adapters.len());
    if adapters.is_empty() {
        println!("  none: no Vulkan, Metal, DX12 or GL driver offered an adapter; the CPU backend will be used");
    }
    for (i, a) in adapters.iter().enumerate() {
        println!("  [{i}] {} — {}, {} ({})", a.name, a.backend, a.device_type, a.driver);
    }
    println!("CPU backend: {}", CpuBackend::with_precision(g.precision).describe());
    if g.backend == BackendChoice::Cpu {
        println!("chosen: cpu (--backend cpu)");
        return Ok(());
    }
    match pollster::block_on(GpuBackend::new(&g.gpu)) {
        Ok(gpu)
            if g.backend == BackendChoice::Auto
                && g.gpu.adapter.is_none()
                && gpu.context().adapter.device_type == tokenclip::device::SOFTWARE_ADAPTER =>
        {
            println!(
                "chosen: cpu (the only GPU adapter, {}, is a software renderer, slower than the CPU backend; \
                 --backend gpu uses it anyway)",
                gpu.context().adapter.name
            );
        }
        Ok(gpu) => print_gpu(&gpu),
        Err(e) if g.backend == BackendChoice::Auto => {
            println!("chosen: cpu (no usable GPU: {e})");
        }
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

fn print_gpu(gpu: &GpuBackend) {
    let ctx = gpu.context();
    println!("chosen: {}", gpu.describe());
    println!("  pipelines built: {}", gpu.pipeline_count());
    let l = &ctx.limits;
    println!("  limits:");
    let rows: [(&str, u64); 9] = [
        ("max_storage_buffer_binding_size", l.max_storage_buffer_binding_size),
        ("max_buffer_size", l.max_buffer_size),
        ("max_compute_invocations_per_workgroup", u64::from(l.max_compute_invocations_per_workgroup)),
        ("max_compute_workgroup_size_x", u64::from(l.max_compute_workgroup_size_x)),
        ("max_compute_workgroup_storage_size", u64::from(l.max_compute_workgroup_storage_size)),
        ("max_compute_workgroups_per_dimension", u64::from(l.max_compute_workgroups_per_dimension)),
        ("max_storage_buffers_per_shader_stage", u64::from(l.max_storage_buffers_per_shader_stage)),
        ("max_bind_groups", u64::from(l.max_bind_groups)),
        ("min_uniform_buffer_offset_alignment", u64::from(l.min_uniform_buffer_offset_alignment)),
    ];
    for (name, v) in rows {
        println!("    {name:<40} {v}");
    }
    let f = ctx.features;
    let yes = |b: bool| if b { "yes" } else { "no" };
    println!("  features:");
    println!("    shader-f16      {}", yes(f.contains(wgpu::Features::SHADER_F16)));
    println!("    subgroups       {}", yes(f.contains(wgpu::Features::SUBGROUP)));
    println!("    timestamp-query {}", yes(f.contains(wgpu::Features::TIMESTAMP_QUERY)));
}

fn print_model(path: &std::path::Path) -> anyhow::Result<()> {
    let file = tokenclip::clip::model_file::ModelFile::open(path)?;
    println!("model {}:", path.display());
    print_config(&file.config);
    Ok(())
}

/// Prints a model configuration: architecture, towers, storage and detection settings.
pub fn print_config(c: &tokenclip::clip::config::ModelConfig) {
    let v = &c.clip.vision;
    println!("  architecture: {}", c.clip.name.as_deref().unwrap_or("custom CLIP ViT"));
    println!(
        "  vision: width {}, {} layers, {} heads, patch {}, native {} px, {}; embedding {}",
        v.width,
        v.layers,
        v.heads,
        v.patch_size,
        v.image_size,
        v.activation.name(),
        c.clip.embed_dim
    );
    match &c.clip.text {
        Some(t) => println!(
            "  text: width {}, {} layers, {} heads, context {}, {}",
            t.width,
            t.layers,
            t.heads,
            t.context_length,
            t.activation.name()
        ),
        None => println!("  text: none (vision-only file)"),
    }
    println!(
        "  weights {:?}, input {} px, DPAM from layer {}, feature layers {:?}",
        c.weights, c.input_size, c.dpam_start, c.feature_layers
    );
    match (&c.text_embeddings, &c.prompts) {
        (Some(e), p) => {
            let d = &c.detection;
            println!("  text embeddings: M = {} subspaces, from {}", e.subspaces, e.source);
            if let Some(p) = p {
                println!(
                    "  prompts: {} context tokens, {} deep layers × {} tokens",
                    p.context_tokens, p.deep_layers, p.deep_tokens
                );
            }
            println!(
                "  detection: τ {}, σ {}, K {}, ε {}, Sinkhorn ≤ {} iterations (tol {}), mix {:?}, score {:?}, assign {:?}",
                d.temperature, d.sigma, d.top_k, d.epsilon, d.sinkhorn_iters, d.sinkhorn_tol, d.mix, d.score, d.assign
            );
        }
        (None, _) => println!("  text embeddings: none (import with --prompts to detect)"),
    }
    match &c.few_shot {
        Some(f) => println!(
            "  few-shot memory: k = {} normal images ({}), layers {:?}, weight {}, image score {}",
            f.shots,
            f.source,
            f.layers,
            f.weight,
            if f.image_score { "takes the few-shot maximum in" } else { "zero-shot only" }
        ),
        None => println!("  few-shot memory: none (zero-shot; `tokenclip reference` adds one)"),
    }
}
