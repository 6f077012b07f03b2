//! The WebGPU backend: WGSL kernels from `shaders/` run through wgpu, natively (Vulkan, Metal,
//! DX12, GL) and in the browser. One launcher file per op family records into a shared command
//! encoder; work is submitted only by [`Backend::flush`] or a readback, so a whole forward pass
//! is one submission.

mod context;
pub mod dispatch;
mod fault;
mod kernels;
pub mod params;
mod pool;
mod recorder;
pub mod shaders;
mod timestamps;

mod attention;
mod blur;
mod copy;
mod elementwise;
mod matmul;
mod norm;
mod patch_embed;
mod resize;
mod score;
mod softmax;
mod transport;

use std::sync::Arc;

pub use context::{list_adapters, AdapterSummary, GpuContext, GpuOptions, ADAPTER_ENV};
pub use fault::{FaultKind, GpuFault, FAULT_ENV};
pub use pool::size_class;

use super::{
    check, AttentionKind, AttentionMask, BLayout, Backend, BackendError, DType, ScoreMix, SinkhornParams, TensorInfo,
};
use kernels::Kernels;
use pool::{BufferPool, PooledBuffer};
use recorder::Recorder;

/// A tensor in a pooled GPU storage buffer. f16 tensors hold packed pairs (little-endian halves).
#[derive(Debug, Clone)]
pub struct GpuTensor {
    buf: Arc<PooledBuffer>,
    shape: Vec<usize>,
    dtype: DType,
}

impl TensorInfo for GpuTensor {
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn dtype(&self) -> DType {
        self.dtype
    }
}

impl GpuTensor {
    /// Bytes of data (f16 rounded up to whole 4-byte words).
    pub fn bytes(&self) -> u64 {
        data_bytes(self.len(), self.dtype)
    }

    fn binding(&self) -> Binding<'_> {
        Binding { buffer: self.buf.buffer(), bytes: self.bytes() }
    }
}

fn data_bytes(len: usize, dtype: DType) -> u64 {
    match dtype {
        DType::F32 => len as u64 * 4,
        DType::F16 => (len as u64).div_ceil(2) * 4,
    }
}

/// A storage binding: a buffer and how many bytes of it the kernel sees.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    buffer: &'a wgpu::Buffer,
    bytes: u64,
}

/// The wgpu implementation of [`Backend`].
#[derive(Debug)]
pub struct GpuBackend {
    ctx: GpuContext,
    kernels: Kernels,
    pool: BufferPool,
    recorder: Recorder,
    /// Bound where a kernel's optional input is absent (matmul without bias).
    placeholder: wgpu::Buffer,
    /// Gaussian taps per σ (bits), uploaded once: an upload mid-pass would force a submission.
    blur_taps: std::sync::Mutex<std::collections::HashMap<u32, GpuTensor>>,
    /// The test-only fault plan ([`FAULT_ENV`]).
    fault: fault::FaultHook,
}

impl GpuBackend {
    /// The most bytes one tensor may hold on this device (its storage-binding and buffer limits).
    pub fn tensor_byte_limit(&self) -> u64 {
        self.ctx.limits.max_storage_buffer_binding_size.min(self.ctx.limits.max_buffer_size)
    }

    /// Whether the adapter is a software renderer on the CPU (lavapipe, SwiftShader, WARP).
    pub fn is_software(&self) -> bool {
        self.ctx.adapter.device_type == format!("{:?}", wgpu::DeviceType::Cpu)
    }

    /// Whether kernel times can be taken here: the device has `TIMESTAMP_QUERY`, and this is
    /// not the browser (reading them back blocks).
    pub fn has_kernel_timestamps(&self) -> bool {
        cfg!(not(target_arch = "wasm32")) && self.ctx.device.features().contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Starts or stops taking every kernel's GPU time ([`GpuBackend::take_kernel_times`]).
    ///
    /// # Errors
    /// [`BackendError::InvalidArgument`] where [`GpuBackend::has_kernel_timestamps`] is false.
    pub fn time_kernels(&self, on: bool) -> Result<(), BackendError> {
        if on && !self.has_kernel_timestamps() {
            return Err(BackendError::InvalidArgument {
                op: "time_kernels",
                message: "this adapter offers no timestamp queries (or this is the browser)".into(),
            });
        }
        self.recorder.set_timing(&self.ctx, on)
    }

    /// The kernel times of the work submitted since timing started (a readback or `flush`
    /// submits), in order, with op family and model part; they are forgotten here.
    pub fn take_kernel_times(&self) -> Vec<crate::backend::profile::OpTime> {
        self.recorder.take_times()
    }

    /// Opens the adapter `opts` asks for (or the best one) and builds every pipeline.
    ///
    /// # Errors
    /// [`BackendError::NoAdapter`], [`BackendError::AdapterNotFound`],
    /// [`BackendError::UnsupportedAdapter`] (limits below what the kernels need),
    /// [`BackendError::DeviceRequest`], or a [`BackendError::Device`] if a pipeline fails to build.
    pub async fn new(opts: &GpuOptions) -> Result<Self, BackendError> {
        let ctx = GpuContext::open(opts).await?;
        // An error scope, not the uncaptured-error hook: browsers report shader errors
        // asynchronously, and a bad kernel must fail here, not at the first readback.
        let scope = ctx.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let kernels = Kernels::build(&ctx.device)?;
        if let Some(e) = scope.pop().await {
            return Err(BackendError::Device { op: "pipeline creation", message: e.to_string() });
        }
        let recorder = Recorder::new(&ctx.device, &ctx.limits, &kernels.uniform_layout);
        let placeholder = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("placeholder"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        ctx.health.take("pipeline creation")?;
        Ok(GpuBackend {
            ctx,
            kernels,
            pool: BufferPool::default(),
            recorder,
            placeholder,
            blur_taps: Default::default(),
            fault: fault::FaultHook::default(),
        }
        .with_fault(opts.fault))
    }

    /// Plans a test-only fault ([`FAULT_ENV`]) counted from the next readback, or clears it.
    pub fn set_test_fault(&self, fault: Option<GpuFault>) {
        self.fault.set(fault);
    }

    fn with_fault(self, fault: Option<GpuFault>) -> Self {
        self.fault.set(fault);
        self
    }

    /// The adapter, limits and features in use.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// Number of pipelines built at creation.
    pub fn pipeline_count(&self) -> usize {
        self.kernels.len()
    }

    /// Free buffers held by the pool (for tests that check reuse).
    pub fn pooled_buffers(&self) -> usize {
        self.pool.free_buffers()
    }

    /// Frees the pooled buffers no tensor uses (e.g. after a model was dropped); the next pass
    /// allocates what it needs again.
    pub fn release_free_buffers(&self) {
        self.pool.release_free();
    }

    /// Storage buffers created so far; a repeated pass of the same shapes adds none.
    pub fn buffers_created(&self) -> usize {
        self.pool.created()
    }

    /// Waits for all submitted work (native only; the browser cannot block).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn wait(&self) -> Result<(), BackendError> {
        self.flush()?;
        self.ctx
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| BackendError::Device { op: "wait", message: e.to_string() })?;
        self.ctx.health.take("wait")
    }

    /// A new output tensor of `shape` (f32) from the pool.
    fn alloc(&self, op: &'static str, shape: Vec<usize>) -> Result<GpuTensor, BackendError> {
        let len: usize = shape.iter().product();
        let bytes = data_bytes(len, DType::F32);
        self.check_binding(op, bytes)?;
        // Natively the buffer is Send + Sync and tensors cross threads; in the browser (one
        // thread) wgpu's WebGPU buffer is neither, and the Arc is only shared ownership.
        #[allow(clippy::arc_with_non_send_sync)]
        let buf = Arc::new(self.pool.take(&self.ctx.device, bytes));
        Ok(GpuTensor { buf, shape, dtype: DType::F32 })
    }

    fn check_binding(&self, op: &'static str, bytes: u64) -> Result<(), BackendError> {
        let limit = self.tensor_byte_limit();
        if bytes > limit {
            return Err(BackendError::LimitExceeded {
                op,
                what: "max_storage_buffer_binding_size (bytes of one tensor)",
                needed: bytes,
                limit,
                hint: "; use a smaller image size, or --backend cpu".into(),
            });
        }
        Ok(())
    }

    fn upload_words(&self, words: &[u8], shape: &[usize], dtype: DType) -> Result<GpuTensor, BackendError> {
        self.check_binding("upload", words.len() as u64)?;
        // As in `alloc`: Send + Sync natively, single-threaded in the browser.
        #[allow(clippy::arc_with_non_send_sync)]
        let buf = Arc::new(self.pool.take(&self.ctx.device, words.len() as u64));
        self.recorder.write(&self.ctx, buf.buffer(), words)?;
        Ok(GpuTensor { buf, shape: shape.to_vec(), dtype })
    }

    /// Records one dispatch of `entry` (variant `overrides`) over `grid` workgroups.
    fn dispatch(
        &self,
        entry: &'static str,
        overrides: &[f64],
        bindings: &[Binding<'_>],
        params: &[u8],
        grid: (u32, u32, u32),
    ) -> Result<(), BackendError> {
        let max = self.ctx.limits.max_compute_workgroups_per_dimension;
        for (axis, n) in [("x", grid.0), ("y", grid.1), ("z", grid.2)] {
            if n > max {
                return Err(BackendError::LimitExceeded {
                    op: entry,
                    what: "max_compute_workgroups_per_dimension",
                    needed: u64::from(n),
                    limit: u64::from(max),
                    hint: format!(" (workgroups along {axis})"),
                });
            }
        }
        let kernel = self.kernels.get(entry, overrides)?;
        let layout = self
            .kernels
            .storage_layout(kernel.storage_layout)
            .ok_or_else(|| BackendError::Device { op: entry, message: "missing storage layout".into() })?;
        self.recorder.dispatch(&self.ctx, kernel, layout, bindings, params, grid)
    }

    /// `grid_for` with this device's per-dimension limit.
    fn grid(&self, groups: u64, op: &'static str) -> Result<(u32, u32, u32), BackendError> {
        let max = self.ctx.limits.max_compute_workgroups_per_dimension;
        let groups = u32::try_from(groups).map_err(|_| BackendError::LimitExceeded {
            op,
            what: "workgroups",
            needed: groups,
            limit: u64::from(u32::MAX),
            hint: String::new(),
        })?;
        let (x, y) = dispatch::grid_for(groups, max);
        Ok((x, y, 1))
    }
}

impl Backend for GpuBackend {
    type Tensor = GpuTensor;

    fn describe(&self) -> String {
        format!("gpu: {} ({}, {})", self.ctx.adapter.name, self.ctx.adapter.backend, self.ctx.adapter.device_type)
    }

    fn upload(&self, data: &[f32], shape: &[usize]) -> Result<GpuTensor, BackendError> {
        check::upload(data.len(), shape)?;
        self.upload_words(bytemuck::cast_slice(data), shape, DType::F32)
    }

    fn upload_f16(&self, data: &[half::f16], shape: &[usize]) -> Result<GpuTensor, BackendError> {
        check::upload(data.len(), shape)?;
        let mut words: Vec<u16> = data.iter().map(|v| v.to_bits()).collect();
        if words.len() % 2 == 1 {
            words.push(0);
        }
        self.upload_words(bytemuck::cast_slice(&words), shape, DType::F16)
    }

    async fn read(&self, t: &GpuTensor) -> Result<Vec<f32>, BackendError> {
        self.fault.readback(&self.ctx)?;
        let raw = self.recorder.read(&self.ctx, t.buf.buffer(), t.bytes()).await?;
        Ok(match t.dtype {
            DType::F32 => bytemuck::pod_collect_to_vec(&raw),
            DType::F16 => {
                let halves: Vec<u16> = bytemuck::pod_collect_to_vec(&raw);
                halves[..t.len()].iter().map(|&h| half::f16::from_bits(h).to_f32()).collect()
            }
        })
    }

    fn flush(&self) -> Result<(), BackendError> {
        self.recorder.flush(&self.ctx)
    }

    fn scope(&self, name: std::fmt::Arguments<'_>) {
        self.recorder.set_scope(name);
    }

    fn finish(&self) -> Result<(), BackendError> {
        self.recorder.flush(&self.ctx)?;
        #[cfg(not(target_arch = "wasm32"))]
        self.ctx
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| BackendError::Device { op: "finish", message: e.to_string() })?;
        self.ctx.health.take("finish")
    }

    fn matmul(
        &self,
        a: &GpuTensor,
        b: &GpuTensor,
        bias: Option<&GpuTensor>,
        layout: BLayout,
    ) -> Result<GpuTensor, BackendError> {
        matmul::matmul(self, a, b, bias, layout)
    }

    fn layer_norm(
        &self,
        x: &GpuTensor,
        gamma: &GpuTensor,
        beta: &GpuTensor,
        eps: f32,
    ) -> Result<GpuTensor, BackendError> {
        norm::layer_norm(self, x, gamma, beta, eps)
    }

    fn l2_normalize(&self, x: &GpuTensor) -> Result<GpuTensor, BackendError> {
        norm::l2_normalize(self, x)
    }

    fn softmax(&self, x: &GpuTensor) -> Result<GpuTensor, BackendError> {
        softmax::softmax(self, x)
    }

    fn row_max(&self, x: &GpuTensor) -> Result<GpuTensor, BackendError> {
        softmax::row_max(self, x)
    }

    fn quick_gelu(&self, x: &GpuTensor) -> Result<GpuTensor, BackendError> {
        elementwise::quick_gelu(self, x)
    }

    fn gelu(&self, x: &GpuTensor) -> Result<GpuTensor, BackendError> {
        elementwise::gelu(self, x)
    }

    fn add(&self, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor, BackendError> {
        elementwise::add(self, a, b)
    }

    fn scale(&self, x: &GpuTensor, factor: f32) -> Result<GpuTensor, BackendError> {
        elementwise::scale(self, x, factor)
    }

    fn affine(&self, x: &GpuTensor, factor: f32, shift: f32) -> Result<GpuTensor, BackendError> {
        elementwise::affine(self, x, factor, shift)
    }

    fn reshape(&self, x: &GpuTensor, shape: &[usize]) -> Result<GpuTensor, BackendError> {
        check::reshape(x, shape)?;
        Ok(GpuTensor { buf: x.buf.clone(), shape: shape.to_vec(), dtype: x.dtype })
    }

    fn slice_rows(&self, x: &GpuTensor, start: usize, count: usize) -> Result<GpuTensor, BackendError> {
        copy::slice_rows(self, x, start, count)
    }

    fn concat_rows(&self, a: &GpuTensor, b: &GpuTensor) -> Result<GpuTensor, BackendError> {
        copy::concat_rows(self, a, b)
    }

    fn attention(
        &self,
        qkv: &GpuTensor,
        heads: usize,
        kind: AttentionKind,
        mask: AttentionMask,
    ) -> Result<GpuTensor, BackendError> {
        attention::attention(self, qkv, heads, kind, mask)
    }

    fn patch_embed(&self, image: &GpuTensor, weight: &GpuTensor) -> Result<GpuTensor, BackendError> {
        patch_embed::patch_embed(self, image, weight)
    }

    fn resize_bilinear(&self, x: &GpuTensor, out_h: usize, out_w: usize) -> Result<GpuTensor, BackendError> {
        resize::resize_bilinear(self, x, out_h, out_w)
    }

    fn gaussian_blur(&self, x: &GpuTensor, sigma: f32) -> Result<GpuTensor, BackendError> {
        blur::gaussian_blur(self, x, sigma)
    }

    fn sinkhorn(&self, cost: &GpuTensor, params: SinkhornParams) -> Result<GpuTensor, BackendError> {
        transport::sinkhorn(self, cost, params)
    }

    fn top_k_renorm(&self, x: &GpuTensor, k: usize) -> Result<GpuTensor, BackendError> {
        transport::top_k_renorm(self, x, k)
    }

    fn token_probabilities(
        &self,
        patches: &GpuTensor,
        weights: &GpuTensor,
        text_normal: &GpuTensor,
        text_abnormal: &GpuTensor,
        temperature: f32,
        mix: ScoreMix,
    ) -> Result<GpuTensor, BackendError> {
        score::token_probabilities(self, patches, weights, text_normal, text_abnormal, temperature, mix)
    }
}

/// Converts a dimension to the u32 a params struct holds.
fn dim(op: &'static str, what: &'static str, v: usize) -> Result<u32, BackendError> {
    u32::try_from(v).map_err(|_| BackendError::LimitExceeded {
        op,
        what,
        needed: v as u64,
        limit: u64::from(u32::MAX),
        hint: String::new(),
    })
}
