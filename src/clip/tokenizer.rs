//! CLIP byte-pair-encoding tokenizer (being written).
