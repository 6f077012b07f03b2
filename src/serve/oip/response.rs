//! The v2 infer response: `score` and `map` as JSON numbers or as binary data after the JSON.

use serde::Serialize;
use serde_json::Value;

use super::InferInput;

#[derive(Serialize)]
struct OutputTensor<'a> {
    name: &'static str,
    datatype: &'static str,
    shape: Vec<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a [f32]>,
}

#[derive(Serialize)]
struct InferResponse<'a> {
    model_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    outputs: Vec<OutputTensor<'a>>,
}

/// The response body for `score` and the `height × width` `map`, and the JSON part's length
/// when binary data follows it (for the [`super::HEADER_LENGTH`] header).
pub fn infer_response(
    model: &str,
    input: &InferInput,
    score: f32,
    map: &[f32],
    (width, height): (usize, usize),
) -> (Vec<u8>, Option<usize>) {
    let score = [score];
    let mut binary = Vec::new();
    let mut outputs = Vec::new();
    for (name, values, shape, choice) in
        [("score", &score[..], vec![1], input.outputs.score), ("map", map, vec![height, width], input.outputs.map)]
    {
        let Some(as_binary) = choice else { continue };
        let tensor = if as_binary {
            binary.extend(values.iter().flat_map(|v| v.to_le_bytes()));
            let size = serde_json::json!({ "binary_data_size": values.len() * 4 });
            OutputTensor { name, datatype: "FP32", shape, parameters: Some(size), data: None }
        } else {
            OutputTensor { name, datatype: "FP32", shape, parameters: None, data: Some(values) }
        };
        outputs.push(tensor);
    }
    let response = InferResponse { model_name: model, id: input.id.as_deref(), outputs };
    // Serialising plain structs of strings and finite floats cannot fail.
    let mut body = serde_json::to_vec(&response).unwrap_or_default();
    if binary.is_empty() {
        return (body, None);
    }
    let json_length = body.len();
    body.extend_from_slice(&binary);
    (body, Some(json_length))
}
