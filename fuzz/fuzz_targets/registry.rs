//! Any text as a model registry file (TOML): parsed, merged into the built-in one, each entry's
//! sources and import settings derived.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenclip::hub::registry::Registry;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(reg) = Registry::parse(text, "fuzz.toml") else { return };
    for entry in reg.entries() {
        let _ = entry.files();
        let _ = entry.download_size();
        let _ = entry.conversion_id("f16");
    }
});
