//! CLIP preprocessing (being written).
