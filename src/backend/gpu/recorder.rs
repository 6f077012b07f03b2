//! Command recording: the one encoder launchers append to, the uniform ring their params go
//! into, the bind-group cache, submission, and async readback.
//!
//! Params are staged on the host as dispatches are recorded and written to the ring with a single
//! `write_buffer` just before the submission that uses them; when the ring is full the pending
//! work is submitted first, so a slot is never rewritten before the dispatch reading it is queued.
//! Every write-then-submit happens under the one `pending` lock, so threads sharing a backend
//! cannot interleave their params or uploads with another thread's submission.

use std::collections::HashMap;
use std::sync::Mutex;

use super::kernels::{Kernel, PARAMS_BINDING_SIZE};
use super::{Binding, GpuContext};
use crate::backend::BackendError;

/// Dispatches per submission before the ring wraps (a ViT-L forward pass needs about 400).
const RING_SLOTS: u64 = 1024;
/// Bind groups kept before the cache is cleared (a forward pass reuses a few hundred).
const BIND_GROUP_CACHE: usize = 4096;

type BindKey = ((u32, u32), Vec<(wgpu::Buffer, u64)>);

#[derive(Debug, Default)]
struct Pending {
    encoder: Option<wgpu::CommandEncoder>,
    staged: Vec<u8>,
    slots: u64,
}

/// Records dispatches and copies into one encoder and submits them together.
#[derive(Debug)]
pub struct Recorder {
    pending: Mutex<Pending>,
    ring: wgpu::Buffer,
    ring_group: wgpu::BindGroup,
    stride: u64,
    bind_groups: Mutex<HashMap<BindKey, wgpu::BindGroup>>,
    staging: Mutex<HashMap<u64, Vec<wgpu::Buffer>>>,
    /// Kernel timestamps, while they are being taken ([`Recorder::set_timing`]).
    timing: Mutex<Option<super::timestamps::Timestamps>>,
}

fn poisoned(op: &'static str) -> BackendError {
    BackendError::Device { op, message: "internal lock poisoned by an earlier panic".into() }
}

impl Recorder {
    /// Creates the uniform ring and its bind group.
    pub fn new(device: &wgpu::Device, limits: &wgpu::Limits, uniform_layout: &wgpu::BindGroupLayout) -> Self {
        let stride = u64::from(limits.min_uniform_buffer_offset_alignment).max(PARAMS_BINDING_SIZE);
        let ring = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("params ring"),
            size: stride * RING_SLOTS,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let ring_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("params ring"),
            layout: uniform_layout,
            entries: &[wgpu::BindGroupEntry {
                binding: 0,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &ring,
                    offset: 0,
                    size: wgpu::BufferSize::new(PARAMS_BINDING_SIZE),
                }),
            }],
        });
        Recorder {
            pending: Mutex::new(Pending::default()),
            ring,
            ring_group,
            stride,
            bind_groups: Mutex::new(HashMap::new()),
            staging: Mutex::new(HashMap::new()),
            timing: Mutex::new(None),
        }
    }

    fn bind_group(
        &self,
        ctx: &GpuContext,
        kernel: &Kernel,
        layout: &wgpu::BindGroupLayout,
        bindings: &[Binding<'_>],
    ) -> Result<wgpu::BindGroup, BackendError> {
        let key: BindKey = (kernel.storage_layout, bindings.iter().map(|b| (b.buffer.clone(), b.bytes)).collect());
        let mut cache = self.bind_groups.lock().map_err(|_| poisoned("bind group"))?;
        if let Some(group) = cache.get(&key) {
            return Ok(group.clone());
        }
        if cache.len() >= BIND_GROUP_CACHE {
            cache.clear();
        }
        let entries: Vec<_> = bindings
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: b.buffer,
                    offset: 0,
                    size: wgpu::BufferSize::new(b.bytes),
                }),
            })
            .collect();
        let group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel.spec.entry),
            layout,
            entries: &entries,
        });
        cache.insert(key, group.clone());
        Ok(group)
    }

    /// Appends one dispatch.
    pub fn dispatch(
        &self,
        ctx: &GpuContext,
        kernel: &Kernel,
        layout: &wgpu::BindGroupLayout,
        bindings: &[Binding<'_>],
        params: &[u8],
        grid: (u32, u32, u32),
    ) -> Result<(), BackendError> {
        let expected = (kernel.spec.inputs + kernel.spec.outputs) as usize;
        if bindings.len() != expected || params.len() as u64 > PARAMS_BINDING_SIZE {
            return Err(BackendError::Device {
                op: kernel.spec.entry,
                message: format!(
                    "launcher passed {} bindings and {} param bytes; the registry says {expected}",
                    bindings.len(),
                    params.len()
                ),
            });
        }
        let group = self.bind_group(ctx, kernel, layout, bindings)?;
        let mut p = self.pending.lock().map_err(|_| poisoned("dispatch"))?;
        if p.slots == RING_SLOTS {
            self.submit_locked(ctx, &mut p);
        }
        let offset = p.slots * self.stride;
        p.staged.resize(offset as usize, 0);
        p.staged.extend_from_slice(params);
        p.slots += 1;
        let encoder = p.encoder.get_or_insert_with(|| {
            ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("tokenclip") })
        });
        let mut timing = self.timing.lock().map_err(|_| poisoned("dispatch"))?;
        let timestamp_writes = timing.as_mut().and_then(|t| t.next(kernel.spec.entry, kernel.spec.family));
        let mut pass = encoder
            .begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(kernel.spec.entry), timestamp_writes });
        pass.set_pipeline(&kernel.pipeline);
        pass.set_bind_group(0, &group, &[]);
        pass.set_bind_group(1, &self.ring_group, &[offset as u32]);
        pass.dispatch_workgroups(grid.0, grid.1, grid.2);
        Ok(())
    }

    /// Starts (a fresh set of) or stops taking kernel timestamps; pending work is submitted
    /// first, so a submission is timed whole or not at all.
    pub fn set_timing(&self, ctx: &GpuContext, on: bool) -> Result<(), BackendError> {
        let mut p = self.pending.lock().map_err(|_| poisoned("timing"))?;
        self.submit_locked(ctx, &mut p);
        let mut timing = self.timing.lock().map_err(|_| poisoned("timing"))?;
        *timing = on.then(|| super::timestamps::Timestamps::new(&ctx.device, &ctx.queue));
        Ok(())
    }

    /// The kernel times of the submissions so far (after a readback or [`Recorder::flush`]).
    pub fn take_times(&self) -> Vec<crate::backend::profile::OpTime> {
        self.timing.lock().ok().and_then(|mut t| t.as_mut().map(|t| t.take())).unwrap_or_default()
    }

    /// Names the model part the next timed passes belong to (only while timing).
    pub fn set_scope(&self, name: std::fmt::Arguments<'_>) {
        if let Ok(mut t) = self.timing.lock() {
            if let Some(t) = t.as_mut() {
                t.scope = name.to_string();
            }
        }
    }

    /// Submits everything recorded since the last submission.
    pub fn flush(&self, ctx: &GpuContext) -> Result<(), BackendError> {
        let mut p = self.pending.lock().map_err(|_| poisoned("flush"))?;
        self.submit_locked(ctx, &mut p);
        drop(p);
        ctx.health.take("submit")
    }

    /// Writes the staged params and submits, under the caller's lock: a second thread's params
    /// must never land in the ring between this write and this submission.
    fn submit_locked(&self, ctx: &GpuContext, p: &mut Pending) {
        p.slots = 0;
        let staged = std::mem::take(&mut p.staged);
        if let Some(mut encoder) = p.encoder.take() {
            if !staged.is_empty() {
                ctx.queue.write_buffer(&self.ring, 0, &staged);
            }
            let mut timing = self.timing.lock().ok();
            let timing = timing.as_mut().and_then(|t| t.as_mut());
            if let Some(t) = &timing {
                t.resolve(&mut encoder);
            }
            ctx.queue.submit([encoder.finish()]);
            // Profiling only: a failed read loses this submission's times, never the results.
            if let Some(t) = timing {
                let _ = t.collect(&ctx.device);
            }
        }
    }

    /// Writes host data into `buffer`. Pending work is submitted first: `write_buffer` lands
    /// before the next submission's commands, so a recorded dispatch still reading a recycled
    /// buffer would otherwise see the new data.
    pub fn write(&self, ctx: &GpuContext, buffer: &wgpu::Buffer, data: &[u8]) -> Result<(), BackendError> {
        let mut p = self.pending.lock().map_err(|_| poisoned("upload"))?;
        self.submit_locked(ctx, &mut p);
        ctx.queue.write_buffer(buffer, 0, data);
        drop(p);
        ctx.health.take("upload")
    }

    /// Copies `bytes` of `src` to the host after all queued work, without blocking on the web.
    pub async fn read(&self, ctx: &GpuContext, src: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>, BackendError> {
        let class = super::size_class(bytes);
        let reused = self.staging.lock().map_err(|_| poisoned("read"))?.get_mut(&class).and_then(Vec::pop);
        let staging = reused.unwrap_or_else(|| {
            ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("readback"),
                size: class,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        {
            let mut p = self.pending.lock().map_err(|_| poisoned("read"))?;
            let encoder = p.encoder.get_or_insert_with(|| {
                ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("tokenclip") })
            });
            encoder.copy_buffer_to_buffer(src, 0, &staging, 0, bytes);
            self.submit_locked(ctx, &mut p);
        }
        ctx.health.take("submit")?;
        let slice = staging.slice(0..bytes);
        let (tx, rx) = futures_channel::oneshot::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        #[cfg(not(target_arch = "wasm32"))]
        ctx.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| BackendError::Readback(e.to_string()))?;
        let mapped = rx.await.map_err(|_| BackendError::Readback("the map callback was dropped".into()))?;
        ctx.health.take("readback")?;
        mapped.map_err(|e| BackendError::Readback(e.to_string()))?;
        let data = slice.get_mapped_range().map_err(|e| BackendError::Readback(e.to_string()))?.to_vec();
        staging.unmap();
        if let Ok(mut pool) = self.staging.lock() {
            pool.entry(class).or_default().push(staging);
        }
        Ok(data)
    }
}
