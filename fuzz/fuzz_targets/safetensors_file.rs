//! Any bytes as a safetensors / tokenclip model file: the header and tensor table, the model
//! config in its metadata, then every tensor read as f32.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenclip::clip::model_file::validate_header;
use tokenclip::clip::safetensors::SafetensorsFile;

fuzz_target!(|data: &[u8]| {
    let Ok(file) = SafetensorsFile::from_source(Box::new(data.to_vec()), "fuzz".into()) else { return };
    let names: Vec<String> = file.header.tensors.keys().cloned().collect();
    let _ = validate_header(&file.header, "fuzz");
    for name in names {
        let _ = file.read_f32(&name);
    }
});
