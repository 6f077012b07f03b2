//! Any bytes as a PyTorch checkpoint (zip archive, pickle, storages), every tensor read as f32.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenclip::clip::import::torch::TorchCheckpoint;

fuzz_target!(|data: &[u8]| {
    let Ok(ckpt) = TorchCheckpoint::from_source(Box::new(data.to_vec()), "fuzz".into()) else { return };
    let names: Vec<String> = ckpt.tensors().keys().cloned().collect();
    for name in names {
        let _ = ckpt.read_f32(&name);
    }
});
