//! Adapter discovery and choice, device creation with the adapter's own limits, and the
//! error/lost-device capture every later step checks.

use std::sync::{Arc, Mutex};

use crate::backend::BackendError;

/// Environment variable naming an adapter by substring, like `--adapter`.
pub const ADAPTER_ENV: &str = "TOKENCLIP_ADAPTER";

/// What every kernel here needs from a device, whatever the adapter offers beyond it.
pub const REQUIRED_INVOCATIONS: u32 = 256;
/// Shared memory used by the largest kernel (attention: two 16 × 128 f32 tiles).
pub const REQUIRED_WORKGROUP_STORAGE: u32 = 16 * 1024;
/// Storage buffers bound by the widest kernel.
pub const REQUIRED_STORAGE_BUFFERS: u32 = 4;

/// How to pick and open the GPU.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct GpuOptions {
    /// Case-insensitive substring of the adapter name to use (else the best adapter).
    pub adapter: Option<String>,
    /// A test-only fault to inject ([`super::FAULT_ENV`]); never set in normal use.
    pub fault: Option<super::GpuFault>,
}

impl GpuOptions {
    /// Options from the environment (`TOKENCLIP_ADAPTER`, and the test hook's
    /// `TOKENCLIP_TEST_GPU_FAULT`).
    ///
    /// # Errors
    /// [`BackendError::TestFault`] if the fault variable is set but unreadable.
    pub fn from_env() -> Result<Self, BackendError> {
        #[cfg(not(target_arch = "wasm32"))]
        {
            let var = |name| std::env::var(name).ok().filter(|s: &String| !s.is_empty());
            let fault = var(super::FAULT_ENV).map(|s| s.parse()).transpose()?;
            Ok(GpuOptions { adapter: var(ADAPTER_ENV), fault })
        }
        #[cfg(target_arch = "wasm32")]
        Ok(GpuOptions::default())
    }

    /// Chooses the adapter whose name contains `name` (case-insensitive).
    pub fn with_adapter(mut self, name: impl Into<String>) -> Self {
        self.adapter = Some(name.into());
        self
    }
}

/// One adapter as `tokenclip info` reports it.
#[derive(Debug, Clone)]
pub struct AdapterSummary {
    /// Driver-reported name.
    pub name: String,
    /// wgpu backend (Vulkan, Metal, Dx12, Gl, BrowserWebGpu).
    pub backend: String,
    /// Discrete, integrated, virtual, CPU or other.
    pub device_type: String,
    /// Driver name and version.
    pub driver: String,
}

impl AdapterSummary {
    fn of(adapter: &wgpu::Adapter) -> Self {
        let info = adapter.get_info();
        AdapterSummary {
            name: info.name,
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: format!("{} {}", info.driver, info.driver_info).trim().to_string(),
        }
    }
}

/// Preference order: discrete > integrated > virtual/other > CPU; then native APIs over GL.
fn rank(adapter: &wgpu::Adapter) -> (u8, u8) {
    let info = adapter.get_info();
    let kind = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    };
    let api = match info.backend {
        wgpu::Backend::Gl => 1,
        _ => 0,
    };
    (kind, api)
}

/// The wgpu backends to use: `WGPU_BACKEND` (e.g. `vulkan,metal`) if set, else every one.
pub fn backends() -> wgpu::Backends {
    wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all())
}

/// A wgpu instance with the backends of [`backends`].
pub fn instance() -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backends();
    wgpu::Instance::new(desc)
}

/// Every adapter this machine offers (on the web: the one the browser gives).
pub async fn adapters(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        instance.enumerate_adapters(backends()).await
    }
    #[cfg(target_arch = "wasm32")]
    {
        let opts = wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        };
        instance.request_adapter(&opts).await.into_iter().collect()
    }
}

/// Summaries of every adapter, in preference order.
pub async fn list_adapters() -> Vec<AdapterSummary> {
    let mut all = adapters(&instance()).await;
    all.sort_by_key(rank);
    all.iter().map(AdapterSummary::of).collect()
}

/// Picks the adapter `opts` names, or the best one.
pub async fn choose_adapter(instance: &wgpu::Instance, opts: &GpuOptions) -> Result<wgpu::Adapter, BackendError> {
    let mut all = adapters(instance).await;
    if all.is_empty() {
        return Err(BackendError::NoAdapter { backends: format!("{:?}", backends()) });
    }
    all.sort_by_key(rank);
    match &opts.adapter {
        None => Ok(all.remove(0)),
        Some(wanted) => {
            let needle = wanted.to_lowercase();
            match all.iter().position(|a| a.get_info().name.to_lowercase().contains(&needle)) {
                Some(i) => Ok(all.remove(i)),
                None => Err(BackendError::AdapterNotFound {
                    wanted: wanted.clone(),
                    seen: all.iter().map(|a| a.get_info().name).collect(),
                }),
            }
        }
    }
}

/// Refuses adapters below what the kernels need, naming the limit.
pub fn check_limits(name: &str, l: &wgpu::Limits) -> Result<(), BackendError> {
    let checks = [
        ("max_compute_invocations_per_workgroup", l.max_compute_invocations_per_workgroup, REQUIRED_INVOCATIONS),
        ("max_compute_workgroup_size_x", l.max_compute_workgroup_size_x, REQUIRED_INVOCATIONS),
        ("max_compute_workgroup_storage_size", l.max_compute_workgroup_storage_size, REQUIRED_WORKGROUP_STORAGE),
        ("max_storage_buffers_per_shader_stage", l.max_storage_buffers_per_shader_stage, REQUIRED_STORAGE_BUFFERS),
        ("max_bind_groups", l.max_bind_groups, 2),
    ];
    for (what, have, need) in checks {
        if have < need {
            return Err(BackendError::UnsupportedAdapter {
                adapter: name.to_string(),
                reason: format!("{what} is {have}, need at least {need}"),
            });
        }
    }
    Ok(())
}

/// The optional features used when the adapter has them.
pub fn wanted_features() -> wgpu::Features {
    wgpu::Features::SHADER_F16 | wgpu::Features::SUBGROUP | wgpu::Features::TIMESTAMP_QUERY
}

/// Errors wgpu reported outside any error scope, and whether the device was lost.
#[derive(Debug, Default)]
pub struct DeviceHealth {
    error: Mutex<Option<String>>,
    lost: Mutex<Option<String>>,
}

impl DeviceHealth {
    /// Installs the capture callbacks on `device`.
    pub fn watch(device: &wgpu::Device) -> Arc<Self> {
        let health = Arc::new(DeviceHealth::default());
        let h = health.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            if let Ok(mut slot) = h.error.lock() {
                slot.get_or_insert_with(|| e.to_string());
            }
        }));
        let h = health.clone();
        device.set_device_lost_callback(move |reason, msg| {
            if let Ok(mut slot) = h.lost.lock() {
                *slot = Some(format!("{reason:?}: {msg}"));
            }
        });
        health
    }

    /// Records that the device is lost (the test fault hook destroys it without a callback).
    pub fn mark_lost(&self, msg: String) {
        if let Ok(mut slot) = self.lost.lock() {
            slot.get_or_insert(msg);
        }
    }

    /// Whether the device is lost (nothing is taken).
    pub fn is_lost(&self) -> bool {
        self.lost.lock().map(|s| s.is_some()).unwrap_or(true)
    }

    /// The first captured problem since the last call, as an error for `op`.
    pub fn take(&self, op: &'static str) -> Result<(), BackendError> {
        if let Some(msg) = self.lost.lock().ok().and_then(|s| s.clone()) {
            return Err(BackendError::DeviceLost(msg));
        }
        if let Some(message) = self.error.lock().ok().and_then(|mut s| s.take()) {
            return Err(BackendError::Device { op, message });
        }
        Ok(())
    }
}

/// An open device with everything chosen about it.
#[derive(Debug)]
pub struct GpuContext {
    /// The adapter it came from.
    pub adapter: AdapterSummary,
    /// The device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// Limits granted (the adapter's own).
    pub limits: wgpu::Limits,
    /// Optional features granted.
    pub features: wgpu::Features,
    /// Error and loss capture.
    pub health: Arc<DeviceHealth>,
}

impl GpuContext {
    /// Chooses an adapter and opens a device with all of its limits and the wanted features it has.
    pub async fn open(opts: &GpuOptions) -> Result<Self, BackendError> {
        let instance = instance();
        let adapter = choose_adapter(&instance, opts).await?;
        let summary = AdapterSummary::of(&adapter);
        let limits = adapter.limits();
        check_limits(&summary.name, &limits)?;
        let features = adapter.features() & wanted_features();
        let desc = wgpu::DeviceDescriptor {
            label: Some("tokenclip"),
            required_features: features,
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        };
        let (device, queue) =
            adapter.request_device(&desc).await.map_err(|e| BackendError::DeviceRequest(e.to_string()))?;
        let health = DeviceHealth::watch(&device);
        Ok(GpuContext { adapter: summary, device, queue, limits, features, health })
    }
}
