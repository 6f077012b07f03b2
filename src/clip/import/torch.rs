//! torch (being written).
