//! The error every backend op returns: which op, which operand, which limit.

use thiserror::Error;

/// Why a backend op or the device itself failed.
///
/// Every variant names the op (or the device step) it comes from, so a message read in a log says
/// where to look without a backtrace.
#[derive(Debug, Error, Clone, PartialEq)]
#[non_exhaustive]
pub enum BackendError {
    /// An operand has the wrong shape for this op.
    #[error("{op}: {operand} has shape {got:?}, expected {expected}")]
    ShapeMismatch {
        /// The op that refused the input.
        op: &'static str,
        /// Which operand (argument name).
        operand: &'static str,
        /// A description of the shape the op needs.
        expected: String,
        /// The shape it was given.
        got: Vec<usize>,
    },
    /// An operand has no elements; no op here has a meaning for that.
    #[error("{op}: {operand} is empty (shape {shape:?}); every dimension must be at least 1")]
    EmptyTensor {
        /// The op that refused the input.
        op: &'static str,
        /// Which operand.
        operand: &'static str,
        /// Its shape.
        shape: Vec<usize>,
    },
    /// An operand is stored in a dtype the op cannot read there (f16 is only for weights).
    #[error("{op}: {operand} is {got}, expected {expected}")]
    DTypeMismatch {
        /// The op that refused the input.
        op: &'static str,
        /// Which operand.
        operand: &'static str,
        /// What the op accepts there.
        expected: &'static str,
        /// What it was given.
        got: &'static str,
    },
    /// A scalar argument is out of its valid range (a negative sigma, K larger than M, ...).
    #[error("{op}: {message}")]
    InvalidArgument {
        /// The op that refused the input.
        op: &'static str,
        /// What is wrong and what would be valid.
        message: String,
    },
    /// The request needs more than the device (or this implementation) allows.
    #[error("{op}: {what} needs {needed}, but the limit is {limit}{hint}")]
    LimitExceeded {
        /// The op or step that hit the limit.
        op: &'static str,
        /// Which limit, in wgpu's terms where it is one of wgpu's limits.
        what: &'static str,
        /// What was needed.
        needed: u64,
        /// What the device (or the kernel) allows.
        limit: u64,
        /// Extra advice, starting with "; " when present.
        hint: String,
    },
    /// No GPU adapter was found at all.
    #[error("no GPU adapter found (backends tried: {backends}); use --backend cpu, or install a Vulkan/Metal/DX12 driver (on Linux without a GPU, Mesa's lavapipe: Debian package mesa-vulkan-drivers)")]
    NoAdapter {
        /// Which wgpu backends were asked.
        backends: String,
    },
    /// `--adapter`/`TOKENCLIP_ADAPTER` named an adapter that does not exist.
    #[error("no GPU adapter name contains {wanted:?}; adapters seen: {seen:?}")]
    AdapterNotFound {
        /// The substring asked for.
        wanted: String,
        /// Names of the adapters that exist.
        seen: Vec<String>,
    },
    /// The adapter lacks something every kernel here needs.
    #[error("adapter {adapter:?} is not usable: {reason}")]
    UnsupportedAdapter {
        /// Adapter name.
        adapter: String,
        /// What is missing.
        reason: String,
    },
    /// The driver refused to create the device.
    #[error("could not open the GPU device: {0}")]
    DeviceRequest(String),
    /// The device was lost (driver reset, GPU removed, browser tab backgrounded for too long).
    #[error("the GPU device was lost: {0}; recreate the backend (or use --backend cpu)")]
    DeviceLost(String),
    /// wgpu reported an error (validation or out of memory) while running ops.
    #[error("GPU error while running {op}: {message}")]
    Device {
        /// The step during which the error was noticed.
        op: &'static str,
        /// wgpu's message.
        message: String,
    },
    /// The test-only fault hook ([`crate::backend::gpu::FAULT_ENV`]) was given a plan it cannot read.
    #[error("test GPU fault: {0}")]
    TestFault(String),
    /// Reading a result back from the GPU failed.
    #[error("reading a result back from the GPU failed: {0}")]
    Readback(String),
}

impl BackendError {
    /// True for a failure of the device itself (lost, out of memory, a failed readback) rather
    /// than of the inputs: the same pass may succeed on another backend.
    pub fn is_device_fault(&self) -> bool {
        matches!(self, BackendError::DeviceLost(_) | BackendError::Device { .. } | BackendError::Readback(_))
    }
}
