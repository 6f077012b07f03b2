//! The browser's GPU: the WebGPU checks with advice for the user, the one backend every
//! detector shares (with the queue that runs one pass at a time), the adapter's name as the
//! browser gives it, and the model-versus-limits check done before any upload.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;

use futures_channel::oneshot;
use js_sys::{Function, Object, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::backend::gpu::{GpuBackend, GpuContext, GpuFault, GpuOptions};
use crate::clip::config::ModelConfig;
use crate::clip::model_file::{tensor_specs, TEXT_ABNORMAL, TEXT_NORMAL};

use super::error::{self, ErrorKind, WebError};
use super::{install_panic_hook, tensors};

/// The shared backend, its queue, and the adapter's name.
#[derive(Clone)]
pub(super) struct SharedGpu {
    /// The backend.
    pub be: Rc<GpuBackend>,
    /// One pass at a time.
    pub turns: Rc<Turns>,
    /// The adapter as the browser describes it.
    pub adapter: String,
}

thread_local! {
    /// The GPU backend every detector of this page (or worker) shares, with its queue.
    static GPU: RefCell<Option<SharedGpu>> = const { RefCell::new(None) };
    /// A test fault planned before the shared backend opened (see [`set_test_gpu_fault`]).
    static PENDING_FAULT: Cell<Option<GpuFault>> = const { Cell::new(None) };
}

/// For tests only: makes the shared WebGPU backend fail on purpose at the N-th readback from
/// now (`"lost:N"` destroys the device, `"oom:N"` reports out of memory once), so the fail-over
/// to the CPU and the error paths can be tested where no GPU can be lost on demand. The first
/// readback of a load is the model upload's, then each image makes two (map, score; three with
/// references). `undefined` clears the plan.
/// With no backend open yet, the plan waits for the next one. Never call it in normal use.
///
/// # Errors
/// `argument` for a plan that is not `lost:N` or `oom:N`.
#[wasm_bindgen(js_name = setTestGpuFault)]
pub fn set_test_gpu_fault(plan: Option<String>) -> Result<(), JsValue> {
    install_panic_hook();
    let fault = plan
        .map(|p| p.parse::<GpuFault>().map_err(|e| WebError::new(ErrorKind::Argument, e.to_string())))
        .transpose()?;
    let open = GPU.with(|g| g.borrow().clone()).filter(|s| !s.be.context().health.is_lost());
    match open {
        Some(shared) => shared.be.set_test_fault(fault),
        None => PENDING_FAULT.with(|p| p.set(fault)),
    }
    Ok(())
}

/// The shared GPU backend, opened (adapter, device, every pipeline) on first use and again
/// after a device loss. Sharing it makes a second model load skip pipeline creation, and one
/// queue serialises every detector's passes.
pub(super) async fn shared_gpu() -> Result<SharedGpu, WebError> {
    if let Some(shared) = GPU.with(|g| g.borrow().clone()) {
        // An error left over from an earlier pass is dropped; a lost device is replaced.
        if !matches!(shared.be.context().health.take("reuse"), Err(crate::BackendError::DeviceLost(_))) {
            return Ok(shared);
        }
    }
    let be = Rc::new(GpuBackend::new(&GpuOptions::default()).await?);
    be.set_test_fault(PENDING_FAULT.with(Cell::take));
    let adapter = browser_adapter_name().await.unwrap_or_else(|| wgpu_adapter_name(be.context()));
    let shared = SharedGpu { be, turns: Rc::new(Turns::default()), adapter };
    GPU.with(|g| *g.borrow_mut() = Some(shared.clone()));
    Ok(shared)
}

/// One `detect` at a time on the shared backend: a FIFO of waiters.
#[derive(Default)]
pub(super) struct Turns {
    busy: Cell<bool>,
    waiting: RefCell<VecDeque<oneshot::Sender<()>>>,
}

/// The right to run a pass; dropping it passes the turn on.
pub(super) struct Turn(Rc<Turns>);

impl Turns {
    /// Waits for this caller's turn.
    pub(super) async fn take(self: &Rc<Self>) -> Turn {
        if self.busy.replace(true) {
            let (tx, rx) = oneshot::channel();
            self.waiting.borrow_mut().push_back(tx);
            // The sender is only dropped after handing over the turn, so this cannot hang.
            let _ = rx.await;
        }
        Turn(self.clone())
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        loop {
            let next = self.0.waiting.borrow_mut().pop_front();
            match next {
                // Still busy: the turn passes to the next waiter (skipping any that gave up).
                Some(tx) => {
                    if tx.send(()).is_ok() {
                        return;
                    }
                }
                None => {
                    self.0.busy.set(false);
                    return;
                }
            }
        }
    }
}

/// Refuses early, with advice, where the browser has no WebGPU at all.
pub(super) fn webgpu_precheck() -> Result<(), WebError> {
    let g = js_sys::global();
    let gpu = Reflect::get(&g, &"navigator".into())
        .and_then(|n| Reflect::get(&n, &"gpu".into()))
        .unwrap_or(JsValue::UNDEFINED);
    if !(gpu.is_undefined() || gpu.is_null()) {
        return Ok(());
    }
    let secure = Reflect::get(&g, &"isSecureContext".into()).ok().and_then(|v| v.as_bool());
    let why = if secure == Some(false) {
        "this page is not a secure context (it was opened as file:// or over plain http from another \
         machine), and browsers offer WebGPU only to secure contexts: serve it over https:// or from \
         http://localhost."
    } else {
        "this browser does not offer WebGPU (navigator.gpu is missing)."
    };
    Err(WebError::new(ErrorKind::WebGpuUnavailable, format!("{why} {}", error::WEBGPU_ADVICE)))
}

/// Checks, before anything is uploaded, that the largest weight and the largest activation of
/// one pass fit in one storage binding of this adapter (the backend checks every buffer again).
pub(super) fn check_fits(config: &ModelConfig, ctx: &GpuContext, adapter: &str) -> Result<(), WebError> {
    let limit = ctx.limits.max_storage_buffer_binding_size.min(ctx.limits.max_buffer_size);
    let weight = tensor_specs(config)
        .iter()
        .filter(|s| s.name.starts_with("visual.") || s.name == TEXT_NORMAL || s.name == TEXT_ABNORMAL)
        .map(|s| tensors::gpu_bytes(s.shape.iter().product(), s.dtype))
        .max()
        .unwrap_or(0);
    let v = &config.clip.vision;
    let s = config.input_size as u64;
    let grid = s / v.patch_size.max(1) as u64;
    let tokens = grid * grid + 1;
    let activation = (tokens * (v.mlp_width.max(3 * v.width)) as u64 * 4).max(3 * s * s * 4);
    let need = weight.max(activation);
    if need <= limit {
        return Ok(());
    }
    let mib = |b: u64| b as f64 / 1048576.0;
    Err(WebError::new(
        ErrorKind::AdapterLimits,
        format!(
            "this model needs GPU buffers of {:.1} MiB (largest weight {:.1} MiB, largest activation \
             {:.1} MiB at {s} px), but this GPU adapter ({}) allows at most {:.1} MiB per buffer \
             (maxStorageBufferBindingSize). Import the model with a smaller --image-size, or use another \
             browser or GPU.",
            mib(need),
            mib(weight),
            mib(activation),
            adapter,
            mib(limit)
        ),
    ))
}

/// wgpu's view of the adapter (on the web only the description, usually empty, and whether it
/// is a software fallback).
fn wgpu_adapter_name(ctx: &GpuContext) -> String {
    let a = &ctx.adapter;
    if a.name.is_empty() {
        format!("{} {}", a.backend, a.device_type)
    } else {
        a.name.clone()
    }
}

/// The adapter as `GPUAdapter.info` describes it: its description, else vendor and
/// architecture ("google swiftshader"), marked when it is a software fallback. `None` where the
/// browser says nothing.
async fn browser_adapter_name() -> Option<String> {
    let gpu =
        Reflect::get(&js_sys::global(), &"navigator".into()).and_then(|n| Reflect::get(&n, &"gpu".into())).ok()?;
    let request = Reflect::get(&gpu, &"requestAdapter".into()).ok()?.dyn_into::<Function>().ok()?;
    let opts = Object::new();
    let _ = Reflect::set(&opts, &"powerPreference".into(), &"high-performance".into());
    let promise = request.call1(&gpu, &opts).ok()?.dyn_into::<Promise>().ok()?;
    let adapter = JsFuture::from(promise).await.ok().filter(|a| a.is_object())?;
    let info = Reflect::get(&adapter, &"info".into()).ok().filter(|i| i.is_object())?;
    let text = |k: &str| Reflect::get(&info, &k.into()).ok().and_then(|v| v.as_string()).unwrap_or_default();
    let mut name = text("description");
    if name.is_empty() {
        name = format!("{} {}", text("vendor"), text("architecture")).trim().to_string();
    }
    let fallback = Reflect::get(&info, &"isFallbackAdapter".into())
        .ok()
        .and_then(|v| v.as_bool())
        .or_else(|| Reflect::get(&adapter, &"isFallbackAdapter".into()).ok().and_then(|v| v.as_bool()))
        .unwrap_or(false);
    if fallback {
        name = format!("{name} (software fallback adapter)").trim().to_string();
    }
    (!name.is_empty()).then_some(name)
}

/// Whether WebGPU works here and the adapter is good enough for tokenclip's kernels; never
/// rejects. Resolves to `{ available: true, adapter, limits }` or `{ available: false, kind,
/// message }` with a message saying what to do.
#[wasm_bindgen(js_name = checkWebGpu, unchecked_return_type = "WebGpuStatus")]
pub async fn check_web_gpu() -> JsValue {
    install_panic_hook();
    let o = Object::new();
    let set = |k: &str, v: JsValue| {
        let _ = Reflect::set(&o, &k.into(), &v);
    };
    let opened = match webgpu_precheck() {
        Ok(()) => GpuContext::open(&GpuOptions::default()).await.map_err(WebError::from),
        Err(e) => Err(e),
    };
    let browser_name = if opened.is_ok() { browser_adapter_name().await } else { None };
    match opened {
        Ok(ctx) => {
            let l = &ctx.limits;
            let limits = Object::new();
            for (k, v) in [
                ("maxStorageBufferBindingSize", l.max_storage_buffer_binding_size as f64),
                ("maxBufferSize", l.max_buffer_size as f64),
                ("maxComputeInvocationsPerWorkgroup", f64::from(l.max_compute_invocations_per_workgroup)),
                ("maxComputeWorkgroupStorageSize", f64::from(l.max_compute_workgroup_storage_size)),
                ("maxStorageBuffersPerShaderStage", f64::from(l.max_storage_buffers_per_shader_stage)),
            ] {
                let _ = Reflect::set(&limits, &k.into(), &v.into());
            }
            set("available", true.into());
            set("adapter", browser_name.unwrap_or_else(|| wgpu_adapter_name(&ctx)).into());
            set("limits", limits.into());
        }
        Err(e) => {
            set("available", false.into());
            set("kind", e.kind.as_str().into());
            set("message", e.message.into());
        }
    }
    o.into()
}
