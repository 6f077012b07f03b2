//! pickle (being written).
