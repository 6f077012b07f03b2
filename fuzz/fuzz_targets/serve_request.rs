//! `tokenclip serve`'s v2 infer request parser on arbitrary bodies, with and without the binary
//! extension's JSON length (the first two bytes choose it): an error, never a panic, a hang or
//! an allocation the body does not pay for.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (head, body) = data.split_at(data.len().min(2));
    let json_length = match head {
        [0, ..] | [] => None,
        [_, n] => Some(usize::from(*n).min(body.len())),
        [_] => Some(body.len()),
        _ => None,
    };
    if let Ok(input) = tokenclip::serve::oip::parse_infer(body, json_length, 16384) {
        let _ = tokenclip::serve::oip::infer_response("m", &input, 0.5, &[0.25; 4], (2, 2));
    }
});
