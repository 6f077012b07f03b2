//! Reading user inputs and writing outputs: image decoding and CLIP preprocessing.

pub mod bytes;
#[cfg(not(target_arch = "wasm32"))]
pub mod cache;
mod error;
pub mod image;
pub mod jpeg;
pub mod npy;
pub mod output;
pub mod overlay;
pub mod preprocess;

pub use error::InputError;
