//! What identifies a `detect` run across its shards (docs/SHARDING.md): the model's bytes, the
//! ordered input list with its output names, and every option that changes a row or a file.

use std::path::Path;

use tokenclip::shard::Fingerprint;

use super::DetectArgs;
use crate::cli::inputs::Inputs;
use crate::cli::shard::{list_digest, model_digest};
use crate::cli::Global;

/// The fingerprint parts `model`, `inputs` and `options` of this run.
///
/// # Errors
/// If the model file cannot be read.
pub fn fingerprint(g: &Global, args: &DetectArgs, model: &Path, inputs: &Inputs) -> anyhow::Result<Fingerprint> {
    let items: Vec<String> = inputs
        .images
        .iter()
        .map(|i| format!("{}\n{}", i.path.display(), i.out_stem.display()))
        .chain(inputs.problems.iter().map(|p| format!("problem: {p}")))
        .collect();
    let options = format!(
        "threshold={:?} map-size={:?} save-maps={} opacity={} reference={:?} memory={} precision={:?}",
        args.threshold,
        args.map_size,
        args.save_maps,
        args.opacity,
        args.reference,
        args.memory.key(),
        g.precision
    );
    let mut f = Fingerprint::new();
    f.insert("model".into(), model_digest(model)?);
    f.insert("inputs".into(), list_digest(items.iter().map(String::as_str), "inputs"));
    f.insert("options".into(), options);
    Ok(f)
}
