//! The v2 request parser and response builder on hand-written requests.

use super::*;

fn parse(json: &str) -> Result<InferInput, RequestError> {
    parse_infer(json.as_bytes(), None, 64)
}

fn bad(json: &str) -> String {
    match parse(json) {
        Err(RequestError::Invalid(message)) => message,
        Err(e) => panic!("{json}: not a 400: {e:?}"),
        Ok(i) => panic!("accepted {json}: {i:?}"),
    }
}

#[test]
fn bytes_input_in_json_is_base64() {
    let i =
        parse(r#"{"id":"a","inputs":[{"name":"image","shape":[1],"datatype":"BYTES","data":["AAEC/w=="]}]}"#).unwrap();
    assert_eq!(i.image, ImageInput::Encoded(vec![0, 1, 2, 255]));
    assert_eq!(i.id.as_deref(), Some("a"));
    assert_eq!(i.outputs, OutputChoice { score: Some(false), map: Some(false) });
}

#[test]
fn bytes_input_as_binary_data_has_a_length_prefix() {
    let json = r#"{"inputs":[{"name":"x","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":7}}]}"#;
    let mut body = json.as_bytes().to_vec();
    body.extend_from_slice(&[3, 0, 0, 0, 9, 8, 7]);
    let i = parse_infer(&body, Some(json.len()), 64).unwrap();
    assert_eq!(i.image, ImageInput::Encoded(vec![9, 8, 7]));
    // Without the prefix the length cannot match.
    let json = r#"{"inputs":[{"name":"x","shape":[1],"datatype":"BYTES","parameters":{"binary_data_size":3}}]}"#;
    let mut body = json.as_bytes().to_vec();
    body.extend_from_slice(&[9, 8, 7]);
    let e = parse_infer(&body, Some(json.len()), 64).unwrap_err().to_string();
    assert!(e.contains("4-byte little-endian length"), "{e}");
}

#[test]
fn uint8_pixels_in_json_flat_or_nested_and_binary() {
    let flat = parse(r#"{"inputs":[{"name":"p","shape":[1,2,3],"datatype":"UINT8","data":[1,2,3,4,5,6]}]}"#).unwrap();
    let nested =
        parse(r#"{"inputs":[{"name":"p","shape":[1,2,3],"datatype":"UINT8","data":[[[1,2,3],[4,5,6]]]}]}"#).unwrap();
    let want = ImageInput::Pixels { width: 2, height: 1, rgb: vec![1, 2, 3, 4, 5, 6] };
    assert_eq!(flat.image, want);
    assert_eq!(nested.image, want);
    let json = r#"{"inputs":[{"name":"p","shape":[1,2,3],"datatype":"UINT8","parameters":{"binary_data_size":6}}]}"#;
    let mut body = json.as_bytes().to_vec();
    body.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
    assert_eq!(parse_infer(&body, Some(json.len()), 64).unwrap().image, want);
}

#[test]
fn malformed_requests_are_named() {
    assert!(bad("not json").contains("not a v2 infer request"));
    assert!(bad(r#"{"inputs":[]}"#).contains("exactly one input"));
    assert!(bad(r#"{"inputs":[{"name":"p","shape":[2,2],"datatype":"UINT8","data":[1,2,3,4]}]}"#)
        .contains("shape [H, W, 3]"));
    assert!(bad(r#"{"inputs":[{"name":"p","shape":[1,1,3],"datatype":"UINT8","data":[1,2]}]}"#)
        .contains("needs 3 values, 2 sent"));
    assert!(
        bad(r#"{"inputs":[{"name":"p","shape":[1,1,3],"datatype":"UINT8","data":[1,2,256]}]}"#).contains("0 to 255")
    );
    assert!(bad(r#"{"inputs":[{"name":"p","shape":[1],"datatype":"FP32","data":[1.0]}]}"#).contains("datatype FP32"));
    assert!(
        bad(r#"{"inputs":[{"name":"i","shape":[2],"datatype":"BYTES","data":["AA==","AA=="]}]}"#).contains("shape [1]")
    );
    assert!(bad(r#"{"inputs":[{"name":"i","shape":[1],"datatype":"BYTES","data":["%%%"]}]}"#).contains("base64"));
    assert!(bad(
        r#"{"inputs":[{"name":"i","shape":[1],"datatype":"BYTES","data":["AA=="]}],"outputs":[{"name":"x"}]}"#
    )
    .contains("unknown output \"x\""));
    let e = parse_infer(b"{}", Some(10), 64).unwrap_err().to_string();
    assert!(e.contains("only 2 bytes"), "{e}");
}

#[test]
fn pixels_over_the_side_limit_are_too_large() {
    let e = parse(r#"{"inputs":[{"name":"p","shape":[65,1,3],"datatype":"UINT8","data":[]}]}"#).unwrap_err();
    assert!(matches!(e, RequestError::TooLarge(_)), "{e:?}");
}

#[test]
fn response_puts_binary_outputs_after_the_json() {
    let input = parse(
        r#"{"id":"r","inputs":[{"name":"i","shape":[1],"datatype":"BYTES","data":["AA=="]}],
            "outputs":[{"name":"map","parameters":{"binary_data":true}},{"name":"score"}]}"#,
    )
    .unwrap();
    let (body, json_length) = infer_response("m", &input, 0.5, &[1.0, 2.0], (2, 1));
    let n = json_length.unwrap();
    let json: Value = serde_json::from_slice(&body[..n]).unwrap();
    assert_eq!(json["id"], "r");
    assert_eq!(json["outputs"][0]["name"], "score");
    assert_eq!(json["outputs"][0]["data"][0], 0.5);
    assert_eq!(json["outputs"][1]["shape"], serde_json::json!([1, 2]));
    assert_eq!(json["outputs"][1]["parameters"]["binary_data_size"], 8);
    let tail: Vec<f32> = body[n..].chunks(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    assert_eq!(tail, [1.0, 2.0]);
}
