//! Any bytes as VisA's `split_csv/1cls.csv` in an otherwise empty folder, read as a VisA dataset:
//! the CSV parser, the column lookup and the paths the rows name (which do not exist).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokenclip::eval::dataset::{Dataset, Layout};

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("tokenclip-fuzz-visa-{}", std::process::id()));
    if std::fs::create_dir_all(dir.join("split_csv")).is_ok()
        && std::fs::write(dir.join("split_csv/1cls.csv"), data).is_ok()
    {
        let _ = Dataset::open(&dir, Some(Layout::Visa));
    }
});
