//! Any text through CLIP's tokenizer (cleaning, BPE, truncation) and back.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenclip::clip::tokenizer::Tokenizer;

fuzz_target!(|data: &[u8]| {
    let Ok(tok) = Tokenizer::shared() else { return };
    let text = String::from_utf8_lossy(data);
    let ids = tok.tokenize(&text, 77);
    let _ = tok.decode(&ids);
});
