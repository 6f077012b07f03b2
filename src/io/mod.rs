//! Reading user inputs and writing outputs: image decoding and CLIP preprocessing.

mod error;

pub use error::InputError;
