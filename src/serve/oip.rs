//! The Open Inference Protocol v2 (KServe, Triton, MLServer) infer request and response, with
//! the binary tensor data extension: parsing and building only, no I/O.
//!
//! **Inputs.** Exactly one: the encoded image file (PNG or JPEG) as `BYTES` of shape `[1]` —
//! in JSON a base64 string, in binary data a 4-byte little-endian length and the bytes, as
//! Triton's clients write `BYTES` — or decoded pixels as `UINT8` `[H, W, 3]` (RGB, row-major),
//! a JSON array of numbers (flat or nested) or `H·W·3` raw bytes. Its name is free.
//! **Outputs.** `score` FP32 `[1]` and `map` FP32 `[H, W]` (the anomaly map at the input's own
//! size); `outputs` in the request picks some, and `"binary_data": true` on one (or the
//! request's `"binary_data_output": true`) sends its values as little-endian f32 after the JSON,
//! whose length the `Inference-Header-Content-Length` header gives.

use base64::Engine;
use serde::Deserialize;
use serde_json::{Map, Value};

/// Why a request cannot be served: the server answers 400 ([`RequestError::Invalid`]) or 413
/// ([`RequestError::TooLarge`]) with the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Malformed: the message names the field.
    #[error("{0}")]
    Invalid(String),
    /// Pixels over the size limit.
    #[error("{0}")]
    TooLarge(String),
}

/// The header that says how long the JSON part of a binary-extension body is.
pub const HEADER_LENGTH: &str = "inference-header-content-length";

#[derive(Deserialize)]
struct InferRequest {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    parameters: Map<String, Value>,
    inputs: Vec<InputTensor>,
    #[serde(default)]
    outputs: Vec<RequestedOutput>,
}

#[derive(Deserialize)]
struct InputTensor {
    name: String,
    shape: Vec<i64>,
    datatype: String,
    #[serde(default)]
    parameters: Map<String, Value>,
    #[serde(default)]
    data: Option<Value>,
}

#[derive(Deserialize)]
struct RequestedOutput {
    name: String,
    #[serde(default)]
    parameters: Map<String, Value>,
}

/// The image a request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageInput {
    /// An encoded PNG or JPEG file.
    Encoded(Vec<u8>),
    /// Decoded RGB pixels, `height × width × 3`.
    Pixels {
        /// W.
        width: u32,
        /// H.
        height: u32,
        /// `H·W·3` bytes, row-major RGB.
        rgb: Vec<u8>,
    },
}

/// Which outputs to send, and whether each goes as binary data (`Some(binary)`; `None`: not sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputChoice {
    /// `score`.
    pub score: Option<bool>,
    /// `map`.
    pub map: Option<bool>,
}

/// A parsed infer request.
#[derive(Debug)]
pub struct InferInput {
    /// The request's `id`, echoed in the response.
    pub id: Option<String>,
    /// The image.
    pub image: ImageInput,
    /// The outputs asked for.
    pub outputs: OutputChoice,
}

/// Parses an infer request `body`; `json_length` is the binary extension's header, if sent.
///
/// # Errors
/// [`RequestError::Invalid`] for anything malformed, naming the field;
/// [`RequestError::TooLarge`] for pixels over `max_side`.
pub fn parse_infer(body: &[u8], json_length: Option<usize>, max_side: u32) -> Result<InferInput, RequestError> {
    let (json, mut binary) = match json_length {
        Some(n) if n > body.len() => {
            return Err(RequestError::Invalid(format!(
                "{HEADER_LENGTH} is {n} but the body has only {} bytes",
                body.len()
            )))
        }
        Some(n) => body.split_at(n),
        None => (body, &[][..]),
    };
    let req: InferRequest = serde_json::from_slice(json)
        .map_err(|e| RequestError::Invalid(format!("the request is not a v2 infer request: {e}")))?;
    let [input] = <[InputTensor; 1]>::try_from(req.inputs).map_err(|inputs| {
        RequestError::Invalid(format!(
            "expected exactly one input (the image as BYTES [1], or pixels as UINT8 [H, W, 3]), got {}",
            inputs.len()
        ))
    })?;
    let raw = match input.parameters.get("binary_data_size") {
        None => None,
        Some(v) => {
            let n = v.as_u64().and_then(|n| usize::try_from(n).ok()).ok_or_else(|| {
                RequestError::Invalid(format!("input {:?}: binary_data_size must be a byte count", input.name))
            })?;
            if n > binary.len() {
                return Err(RequestError::Invalid(format!(
                    "input {:?} claims {n} bytes of binary data but {} follow the JSON",
                    input.name,
                    binary.len()
                )));
            }
            let (mine, rest) = binary.split_at(n);
            binary = rest;
            Some(mine)
        }
    };
    if !binary.is_empty() {
        return Err(RequestError::Invalid(format!("{} bytes of binary data belong to no input", binary.len())));
    }
    if raw.is_some() && input.data.is_some() {
        return Err(RequestError::Invalid(format!("input {:?} has both data and binary data", input.name)));
    }
    let image = match input.datatype.as_str() {
        "BYTES" => bytes_input(&input, raw)?,
        "UINT8" => pixels_input(&input, raw, max_side)?,
        other => {
            return Err(RequestError::Invalid(format!(
                "input {:?} has datatype {other}; send the encoded image as BYTES [1] or pixels as UINT8 [H, W, 3]",
                input.name
            )))
        }
    };
    Ok(InferInput { id: req.id, image, outputs: output_choice(&req.parameters, &req.outputs)? })
}

fn bytes_input(input: &InputTensor, raw: Option<&[u8]>) -> Result<ImageInput, RequestError> {
    let name = &input.name;
    if input.shape.iter().any(|&d| d != 1) {
        return Err(RequestError::Invalid(format!(
            "input {name:?} (BYTES) must have shape [1], one encoded image; got {:?}",
            input.shape
        )));
    }
    if let Some(raw) = raw {
        let len = raw.get(..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize);
        return match len {
            Some(n) if n.checked_add(4) == Some(raw.len()) => Ok(ImageInput::Encoded(raw[4..].to_vec())),
            _ => Err(RequestError::Invalid(format!(
                "input {name:?}: binary BYTES must be a 4-byte little-endian length then that many bytes \
                 ({} bytes sent)",
                raw.len()
            ))),
        };
    }
    let mut values = Vec::new();
    flatten(input.data.as_ref().unwrap_or(&Value::Null), &mut values);
    match values.as_slice() {
        [Value::String(s)] => base64::engine::general_purpose::STANDARD
            .decode(s.trim())
            .map(ImageInput::Encoded)
            .map_err(|e| RequestError::Invalid(format!("input {name:?}: the image must be base64 in JSON: {e}"))),
        _ => Err(RequestError::Invalid(format!(
            "input {name:?}: data must hold one base64 string (the image file), got {} values",
            values.len()
        ))),
    }
}

fn pixels_input(input: &InputTensor, raw: Option<&[u8]>, max_side: u32) -> Result<ImageInput, RequestError> {
    let name = &input.name;
    let (height, width) = match input.shape.as_slice() {
        &[h, w, 3] if h > 0 && w > 0 => (h, w),
        s => {
            return Err(RequestError::Invalid(format!(
                "input {name:?} (UINT8) must have shape [H, W, 3] with H, W > 0; got {s:?}"
            )))
        }
    };
    if height > i64::from(max_side) || width > i64::from(max_side) {
        return Err(RequestError::TooLarge(format!(
            "input {name:?} is {width}x{height}; the limit is {max_side} a side"
        )));
    }
    let (width, height) = (width as u32, height as u32);
    let count = width as usize * height as usize * 3;
    let rgb = match raw {
        Some(raw) if raw.len() == count => raw.to_vec(),
        Some(raw) => {
            return Err(RequestError::Invalid(format!(
                "input {name:?}: shape {:?} needs {count} bytes, {} sent",
                input.shape,
                raw.len()
            )))
        }
        None => {
            // Not `with_capacity(count)`: the shape is the client's word, the data is what it sent.
            let mut values = Vec::new();
            flatten(input.data.as_ref().unwrap_or(&Value::Null), &mut values);
            if values.len() != count {
                return Err(RequestError::Invalid(format!(
                    "input {name:?}: shape {:?} needs {count} values, {} sent",
                    input.shape,
                    values.len()
                )));
            }
            values
                .iter()
                .map(|v| v.as_u64().and_then(|n| u8::try_from(n).ok()))
                .collect::<Option<Vec<u8>>>()
                .ok_or_else(|| RequestError::Invalid(format!("input {name:?}: UINT8 values must be 0 to 255")))?
        }
    };
    Ok(ImageInput::Pixels { width, height, rgb })
}

/// Appends the leaves of nested arrays (the protocol allows flat or nested `data`).
fn flatten<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        Value::Null => {}
        leaf => out.push(leaf),
    }
}

fn flag(parameters: &Map<String, Value>, key: &str) -> Result<Option<bool>, RequestError> {
    match parameters.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(RequestError::Invalid(format!("parameter {key} must be true or false, got {other}"))),
    }
}

fn output_choice(parameters: &Map<String, Value>, outputs: &[RequestedOutput]) -> Result<OutputChoice, RequestError> {
    let default_binary = flag(parameters, "binary_data_output")?.unwrap_or(false);
    if outputs.is_empty() {
        return Ok(OutputChoice { score: Some(default_binary), map: Some(default_binary) });
    }
    let mut choice = OutputChoice { score: None, map: None };
    for o in outputs {
        let binary = Some(flag(&o.parameters, "binary_data")?.unwrap_or(default_binary));
        match o.name.as_str() {
            "score" => choice.score = binary,
            "map" => choice.map = binary,
            other => {
                return Err(RequestError::Invalid(format!("unknown output {other:?}; the outputs are score and map")))
            }
        }
    }
    Ok(choice)
}

mod response;
pub use response::infer_response;

#[cfg(test)]
mod tests;
