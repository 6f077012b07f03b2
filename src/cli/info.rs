//! `tokenclip info`: adapters, the chosen one, its limits and features.

use tokenclip::backend::cpu::CpuBackend;
use tokenclip::backend::gpu::{list_adapters, GpuBackend};
use tokenclip::{Backend, BackendChoice};

use super::Global;

/// Prints what this machine offers and what `--backend`/`--adapter` would pick.
pub fn run(g: &Global) -> anyhow::Result<()> {
    let adapters = pollster::block_on(list_adapters());
    println!("GPU adapters ({}):", adapters.len());
    if adapters.is_empty() {
        println!("  none: no Vulkan, Metal, DX12 or GL driver offered an adapter; the CPU backend will be used");
    }
    for (i, a) in adapters.iter().enumerate() {
        println!("  [{i}] {} — {}, {} ({})", a.name, a.backend, a.device_type, a.driver);
    }
    println!("CPU backend: {}", CpuBackend::new().describe());
    if g.backend == BackendChoice::Cpu {
        println!("chosen: cpu (--backend cpu)");
        return Ok(());
    }
    match pollster::block_on(GpuBackend::new(&g.gpu)) {
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
