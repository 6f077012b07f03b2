//! Reading user inputs and writing outputs: image decoding and CLIP preprocessing.

mod error;
pub mod image;
pub mod preprocess;

pub use error::InputError;
