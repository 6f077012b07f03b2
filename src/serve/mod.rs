//! What `tokenclip serve` parses and builds without I/O, in the library so the fuzz targets
//! reach it: the Open Inference Protocol v2 infer request and response.

pub mod oip;
