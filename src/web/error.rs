//! The errors the JS API rejects with: a JS `Error` whose `name` is `"TokenclipError"`, whose
//! `message` says what went wrong and what to do, and whose `kind` (an [`ErrorKind`]) lets a
//! page react without parsing the message.

use wasm_bindgen::{JsCast, JsValue};

use crate::{BackendError, Error, InputError, ModelError};

/// The `name` of every error the JS API rejects with.
pub const ERROR_NAME: &str = "TokenclipError";

/// What kind of problem an error is (its `kind` property in JS).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The browser has no WebGPU (`navigator.gpu` missing, an insecure context, no adapter).
    WebGpuUnavailable,
    /// The adapter's limits are below what the kernels or this model need.
    AdapterLimits,
    /// The model needs more memory than the backend has (the wasm CPU backend's 4 GiB).
    Memory,
    /// The model file is not a tokenclip model, is damaged, or does not match its config.
    Model,
    /// The image cannot be decoded, is empty or is too large.
    Image,
    /// The model URL could not be downloaded.
    Network,
    /// The browser's cache (Cache API) failed or has no such entry.
    Storage,
    /// The GPU failed while running (device lost, out of memory, readback).
    Gpu,
    /// An argument of the wrong type or out of range.
    Argument,
}

impl ErrorKind {
    /// The string JS sees in `error.kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::WebGpuUnavailable => "webgpu-unavailable",
            ErrorKind::AdapterLimits => "adapter-limits",
            ErrorKind::Memory => "memory",
            ErrorKind::Model => "model",
            ErrorKind::Image => "image",
            ErrorKind::Network => "network",
            ErrorKind::Storage => "storage",
            ErrorKind::Gpu => "gpu",
            ErrorKind::Argument => "argument",
        }
    }
}

/// An error on its way to JS: a kind and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebError {
    /// What kind of problem.
    pub kind: ErrorKind,
    /// What went wrong and, when known, what to do about it.
    pub message: String,
}

impl WebError {
    /// An error of `kind` saying `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        WebError { kind, message: message.into() }
    }

    /// An [`ErrorKind::Argument`] error.
    pub fn argument(message: impl Into<String>) -> Self {
        WebError::new(ErrorKind::Argument, message)
    }

    /// `what` failed with the JS exception `e` (its message is appended).
    pub fn js(kind: ErrorKind, what: &str, e: &JsValue) -> Self {
        WebError::new(kind, format!("{what}: {}", js_message(e)))
    }
}

impl From<WebError> for JsValue {
    fn from(e: WebError) -> JsValue {
        let err = js_sys::Error::new(&e.message);
        err.set_name(ERROR_NAME);
        // Setting a property on a fresh Error object cannot fail; if it somehow did, the error
        // still carries its name and message.
        let _ = js_sys::Reflect::set(&err, &"kind".into(), &e.kind.as_str().into());
        err.into()
    }
}

impl From<Error> for WebError {
    fn from(e: Error) -> Self {
        match e {
            Error::Backend(b) => b.into(),
            Error::Model(m) => m.into(),
            Error::Input(i) => i.into(),
            Error::Hub(h) => h.into(),
            // Errors of layers the browser build does not use (datasets, training).
            #[allow(unreachable_patterns)]
            other => WebError::argument(other.to_string()),
        }
    }
}

impl From<crate::hub::HubError> for WebError {
    fn from(e: crate::hub::HubError) -> Self {
        use crate::hub::HubError as H;
        let kind = match &e {
            H::Registry { .. } | H::UnknownModel { .. } => ErrorKind::Argument,
            H::NotAModel { .. } => ErrorKind::Model,
            H::Io { .. } => ErrorKind::Storage,
            _ => ErrorKind::Network,
        };
        WebError::new(kind, e.to_string())
    }
}

impl From<ModelError> for WebError {
    fn from(e: ModelError) -> Self {
        WebError::new(ErrorKind::Model, e.to_string())
    }
}

impl From<InputError> for WebError {
    fn from(e: InputError) -> Self {
        WebError::new(ErrorKind::Image, e.to_string())
    }
}

/// What to tell a user whose browser has no usable WebGPU.
pub const WEBGPU_ADVICE: &str = "tokenclip runs the model on your GPU through WebGPU. Use a browser \
     that has it (Chrome or Edge 113 or later; Safari 26; Firefox 141 or later on Windows), keep \
     hardware acceleration on, and open the page over https:// or http://localhost. On Linux, \
     Chromium may need to be started with --enable-unsafe-webgpu (and --enable-features=Vulkan).";

impl From<BackendError> for WebError {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::NoAdapter { .. } | BackendError::AdapterNotFound { .. } => WebError::new(
                ErrorKind::WebGpuUnavailable,
                format!("the browser offers WebGPU but gave no GPU adapter (the GPU may be blocklisted or disabled). {WEBGPU_ADVICE}"),
            ),
            BackendError::DeviceRequest(m) => WebError::new(
                ErrorKind::WebGpuUnavailable,
                format!("the browser refused to open the GPU device ({m}). {WEBGPU_ADVICE}"),
            ),
            BackendError::UnsupportedAdapter { adapter, reason } => WebError::new(
                ErrorKind::AdapterLimits,
                format!(
                    "the GPU adapter {adapter:?} is too limited for tokenclip: {reason}. Try another \
                     browser or computer, or the native `tokenclip detect` (it also runs on the CPU)."
                ),
            ),
            BackendError::LimitExceeded { op, what, needed, limit, .. } => WebError::new(
                ErrorKind::AdapterLimits,
                format!(
                    "{op}: {what} needs {needed}, but this GPU adapter allows {limit}. Use a model \
                     imported with a smaller --image-size, another browser or GPU, or the native \
                     `tokenclip detect`."
                ),
            ),
            BackendError::DeviceLost(m) => WebError::new(
                ErrorKind::Gpu,
                format!(
                    "the GPU device was lost ({m}); load the model again (a new device is opened), or \
                     load it with backend \"auto\" to continue on the CPU when the GPU fails"
                ),
            ),
            other => WebError::new(ErrorKind::Gpu, other.to_string()),
        }
    }
}

/// The message of a JS exception (an `Error`'s `message`, a thrown string, or its debug form).
pub fn js_message(e: &JsValue) -> String {
    if let Some(err) = e.dyn_ref::<js_sys::Error>() {
        let name = String::from(err.name());
        let message = String::from(err.message());
        return if name.is_empty() || name == "Error" { message } else { format!("{name}: {message}") };
    }
    e.as_string().unwrap_or_else(|| format!("{e:?}"))
}
