//! Pipelines and layouts, built once from the registry when the backend opens; launchers look
//! them up by entry point and override values and never create GPU objects of their own.

use std::collections::HashMap;

use super::shaders::{self, KernelSpec};
use crate::backend::BackendError;

/// Bytes reserved per params struct in the uniform ring (all structs are at most this large).
pub const PARAMS_BINDING_SIZE: u64 = 64;

/// A built pipeline and the storage layout it binds.
#[derive(Debug)]
pub struct Kernel {
    /// The compute pipeline.
    pub pipeline: wgpu::ComputePipeline,
    /// (inputs, outputs): which storage layout its group 0 uses.
    pub storage_layout: (u32, u32),
    /// Its registry row.
    pub spec: &'static KernelSpec,
}

/// Every pipeline of the registry, with the shared layouts.
#[derive(Debug)]
pub struct Kernels {
    by_key: HashMap<(&'static str, Vec<u64>), Kernel>,
    storage_layouts: HashMap<(u32, u32), wgpu::BindGroupLayout>,
    /// Group 1: the params uniform, bound with a dynamic offset into the uniform ring.
    pub uniform_layout: wgpu::BindGroupLayout,
}

fn storage_entry(binding: u32, read_only: bool) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

fn key_of(values: &[f64]) -> Vec<u64> {
    values.iter().map(|v| v.to_bits()).collect()
}

impl Kernels {
    /// Builds every variant of every kernel in the registry.
    pub fn build(device: &wgpu::Device) -> Result<Self, BackendError> {
        let uniform_layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("params"),
            entries: &[wgpu::BindGroupLayoutEntry {
                binding: 0,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Uniform,
                    has_dynamic_offset: true,
                    min_binding_size: None,
                },
                count: None,
            }],
        });
        let mut storage_layouts = HashMap::new();
        let mut modules = HashMap::new();
        for file in shaders::FILES {
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(file.family),
                source: wgpu::ShaderSource::Wgsl(file.source.into()),
            });
            modules.insert(file.family, module);
        }
        let mut by_key = HashMap::new();
        for spec in shaders::KERNELS {
            let Some(module) = modules.get(spec.family) else {
                return Err(BackendError::Device {
                    op: "pipeline creation",
                    message: format!("no shader file for family {}", spec.family),
                });
            };
            let io = (spec.inputs, spec.outputs);
            let storage = storage_layouts.entry(io).or_insert_with(|| {
                let entries: Vec<_> = (0..spec.inputs)
                    .map(|b| storage_entry(b, true))
                    .chain((0..spec.outputs).map(|b| storage_entry(spec.inputs + b, false)))
                    .collect();
                device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some("storage"),
                    entries: &entries,
                })
            });
            let layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(spec.entry),
                bind_group_layouts: &[Some(&*storage), Some(&uniform_layout)],
                immediate_size: 0,
            });
            for variant in spec.variants() {
                let constants: Vec<(&str, f64)> = variant.clone();
                let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(spec.entry),
                    layout: Some(&layout),
                    module,
                    entry_point: Some(spec.entry),
                    compilation_options: wgpu::PipelineCompilationOptions {
                        constants: &constants,
                        zero_initialize_workgroup_memory: false,
                    },
                    cache: None,
                });
                let values: Vec<f64> = variant.iter().map(|(_, v)| *v).collect();
                by_key.insert((spec.entry, key_of(&values)), Kernel { pipeline, storage_layout: io, spec });
            }
        }
        Ok(Kernels { by_key, storage_layouts, uniform_layout })
    }

    /// The pipeline for `entry` with override values in the registry's axis order.
    pub fn get(&self, entry: &'static str, overrides: &[f64]) -> Result<&Kernel, BackendError> {
        self.by_key.get(&(entry, key_of(overrides))).ok_or_else(|| BackendError::Device {
            op: entry,
            message: format!("no pipeline built for overrides {overrides:?}; the registry in backend/gpu/shaders.rs lists the variants"),
        })
    }

    /// The group-0 layout for `inputs` read-only and `outputs` read-write storage bindings.
    pub fn storage_layout(&self, io: (u32, u32)) -> Option<&wgpu::BindGroupLayout> {
        self.storage_layouts.get(&io)
    }

    /// Number of pipelines built.
    pub fn len(&self) -> usize {
        self.by_key.len()
    }
}
