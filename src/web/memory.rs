//! wasm memory for the CPU backend: what a model needs there (f32 weights, widened from f16 on
//! load, the panel copies of the large products' weights, one pass's activations) against the
//! 4 GiB a wasm32 module can address, checked from the file's header alone so that a model that
//! cannot run is refused before the rest of it downloads.

use crate::backend::cpu::matmul::wants_panels;
use crate::clip::config::ModelConfig;
use crate::clip::model_file::{tensor_specs, validate_header, TEXT_ABNORMAL, TEXT_NORMAL};
use crate::clip::safetensors::{header_len, parse_header};

use super::error::{ErrorKind, WebError};

/// The most a wasm32 module's memory can grow to (65 536 pages of 64 KiB).
pub const WASM_MEMORY_LIMIT: u64 = 4 << 30;
/// Kept free for what the estimate leaves out: the module itself, the decoded image and its
/// overlay, the allocator's slack.
const HEADROOM: u64 = 256 << 20;

/// Bytes the CPU backend holds for `config`'s model during a pass (an estimate, on the high
/// side: it assumes every buffer of the pass is live at once).
pub fn cpu_bytes(config: &ModelConfig) -> u64 {
    let v = &config.clip.vision;
    let s = config.input_size as u64;
    let grid = s / v.patch_size.max(1) as u64;
    let tokens = grid * grid + 1;
    let mut weights = 0u64;
    for spec in tensor_specs(config) {
        let used = spec.name.starts_with("visual.") || spec.name == TEXT_NORMAL || spec.name == TEXT_ABNORMAL;
        if !used {
            continue;
        }
        let elements: u64 = spec.shape.iter().map(|&d| d as u64).product();
        weights += elements * 4;
        // A weight multiplied again and again is also kept as panels (a second copy).
        if let [k, n] = spec.shape[..] {
            if spec.name.starts_with("visual.") && wants_panels(tokens as usize, k.min(n), k.max(n)) {
                weights += elements * 4;
            }
        }
    }
    let (t, w, m, h) = (tokens, v.width as u64, v.mlp_width as u64, v.heads as u64);
    // One block's live buffers: residual, normed input, q/k/v, the attention scores of every
    // head, the MLP's hidden layer and its activation, the feature layers kept for the maps.
    let layers = config.feature_layers.len() as u64;
    let activations = 4 * (t * w * (6 + 2 * layers) + 2 * h * t * t + 2 * t * m);
    // The pixels, the maps at S × S and their smoothing.
    let maps = 4 * s * s * (3 + 4 * layers.max(1));
    weights + activations + maps
}

/// Refuses a model the wasm CPU backend cannot hold, naming its size and the limit.
///
/// # Errors
/// [`ErrorKind::Memory`] when [`cpu_bytes`] plus headroom exceeds [`WASM_MEMORY_LIMIT`].
pub fn check_cpu_fits(config: &ModelConfig, name: &str) -> Result<(), WebError> {
    let need = cpu_bytes(config);
    if need + HEADROOM <= WASM_MEMORY_LIMIT {
        return Ok(());
    }
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    let arch = config.clip.name.as_deref().unwrap_or("this CLIP");
    Err(WebError::new(
        ErrorKind::Memory,
        format!(
            "{name}: {arch} at {} px needs about {:.2} GiB of WebAssembly memory on the CPU (f32 \
             weights and one pass's activations), over the {:.0} GiB a wasm module can address \
             (less {:.2} GiB kept for the page). Use a smaller model or --image-size, WebGPU \
             (backend: \"webgpu\"), or the native `tokenclip detect`.",
            config.input_size,
            gib(need),
            gib(WASM_MEMORY_LIMIT),
            gib(HEADROOM)
        ),
    ))
}

/// Checks the model whose first `loaded` bytes `prefix(n)` gives: `None` until its header has
/// arrived, then whether it fits ([`check_cpu_fits`]). A file that is not a usable model passes
/// here; loading names its problem once it has arrived.
pub fn check_header(prefix: &dyn Fn(u32) -> Vec<u8>, loaded: u32, name: &str) -> Option<Result<(), WebError>> {
    if loaded < 8 {
        return None;
    }
    let first8 = prefix(8);
    let Ok(end) = header_len(&first8, u64::MAX, name) else { return Some(Ok(())) };
    let Ok(end) = u32::try_from(end) else { return Some(Ok(())) };
    if loaded < end {
        return None;
    }
    let json = prefix(end);
    let Ok(header) = parse_header(&json[8..], u64::from(end), u64::MAX, name) else { return Some(Ok(())) };
    let Ok(config) = validate_header(&header, name) else { return Some(Ok(())) };
    Some(check_cpu_fits(&config, name))
}

/// The wasm module's memory now, in bytes (it never shrinks: after a pass, that pass's peak).
#[wasm_bindgen::prelude::wasm_bindgen(js_name = wasmMemoryBytes)]
pub fn wasm_memory_bytes() -> f64 {
    use wasm_bindgen::JsCast;
    wasm_bindgen::memory()
        .dyn_into::<js_sys::WebAssembly::Memory>()
        .ok()
        .and_then(|m| m.buffer().dyn_into::<js_sys::ArrayBuffer>().ok())
        .map_or(0.0, |b| f64::from(b.byte_length()))
}
