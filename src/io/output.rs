//! Writing output files so that a crash, even `kill -9`, never leaves a half-written one behind
//! (DESIGN.md, "CLI contract"): every file goes to a unique temporary name in its own directory
//! (`.NAME.tmp-PID-N`, locked while it is written), is synced, and is then renamed over the final
//! name, which is atomic on one file system. The temporary files a killed run leaves are swept
//! by the next run that writes into the same directory ([`ensure_dir`]).
//!
//! Only built natively; in the browser, outputs are handed to JavaScript instead of written.

#[cfg(not(target_arch = "wasm32"))]
mod atomic;
#[cfg(not(target_arch = "wasm32"))]
mod stale;
#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests;

#[cfg(not(target_arch = "wasm32"))]
pub use atomic::{ensure_dir, write_atomic, AtomicFile};
#[cfg(not(target_arch = "wasm32"))]
pub use stale::sweep_stale;
