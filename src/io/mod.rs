//! Reading user inputs and writing outputs: image decoding and CLIP preprocessing.

mod error;
pub mod image;
pub mod npy;
pub mod output;
pub mod overlay;
pub mod preprocess;

pub use error::InputError;
