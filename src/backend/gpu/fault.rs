//! A test-only fault hook: the GPU fails on purpose at the N-th readback, so the fail-over to
//! the CPU and the error paths can be tested where no device can be lost on demand (lavapipe,
//! SwiftShader). Set natively with `TOKENCLIP_TEST_GPU_FAULT=lost:N` or `oom:N`, in the
//! browser with the JS API's `setTestGpuFault`. Never set in normal use.

use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};

use super::context::GpuContext;
use crate::backend::BackendError;

/// The environment variable holding a [`GpuFault`] (native only).
pub const FAULT_ENV: &str = "TOKENCLIP_TEST_GPU_FAULT";

/// What the injected fault does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The device is destroyed, as a driver reset or a removed GPU would: every later op fails.
    Lost,
    /// One readback reports an out-of-memory error; the device stays usable.
    OutOfMemory,
}

/// A fault at the `at`-th readback (1-based) of the backend's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpuFault {
    /// What happens.
    pub kind: FaultKind,
    /// At which readback.
    pub at: u32,
}

impl FromStr for GpuFault {
    type Err = BackendError;
    fn from_str(s: &str) -> Result<Self, BackendError> {
        let bad = || BackendError::TestFault(format!("{s:?} is not lost:N or oom:N (N ≥ 1, the readback to fail at)"));
        let (kind, at) = s.split_once(':').ok_or_else(bad)?;
        let kind = match kind {
            "lost" => FaultKind::Lost,
            "oom" => FaultKind::OutOfMemory,
            _ => return Err(bad()),
        };
        let at = at.parse::<u32>().ok().filter(|&n| n >= 1).ok_or_else(bad)?;
        Ok(GpuFault { kind, at })
    }
}

/// Counts readbacks and fires the planned fault once.
#[derive(Debug, Default)]
pub(super) struct FaultHook {
    plan: std::sync::Mutex<Option<GpuFault>>,
    readbacks: AtomicU32,
}

impl FaultHook {
    /// Plans `fault` (counting from the next readback), or clears the plan.
    pub fn set(&self, fault: Option<GpuFault>) {
        self.readbacks.store(0, Ordering::Relaxed);
        if let Ok(mut p) = self.plan.lock() {
            *p = fault;
        }
    }

    /// Called before each readback: the injected error when its turn has come.
    pub fn readback(&self, ctx: &GpuContext) -> Result<(), BackendError> {
        let Ok(mut plan) = self.plan.lock() else { return Ok(()) };
        let Some(fault) = *plan else { return Ok(()) };
        if self.readbacks.fetch_add(1, Ordering::Relaxed) + 1 < fault.at {
            return Ok(());
        }
        *plan = None;
        match fault.kind {
            FaultKind::Lost => {
                let msg = format!("Destroyed: injected by the test hook ({FAULT_ENV})");
                ctx.health.mark_lost(msg.clone());
                ctx.device.destroy();
                Err(BackendError::DeviceLost(msg))
            }
            FaultKind::OutOfMemory => Err(BackendError::Device {
                op: "readback",
                message: format!("Out of Memory (injected by the test hook, {FAULT_ENV})"),
            }),
        }
    }
}
