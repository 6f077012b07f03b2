//! `eval --shots K --seed S`: the papers' k-shot protocol. Per class, K normal training images
//! are drawn with the seed (a generator seeded afresh for each class, so a class's draw is the
//! same whichever other classes run) and become that class's few-shot memory.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tokenclip::eval::dataset::Dataset;
use tokenclip::train::rng::Rng;

/// A draw: per class, its K training normals in the order drawn.
pub type Drawn = BTreeMap<String, Vec<PathBuf>>;

/// Draws K training normals per class with `seed`.
///
/// # Errors
/// A class with fewer than K training normals; the message names each such class, how many it
/// has and where they are looked for.
pub fn draw(ds: &Dataset, shots: usize, seed: u64) -> anyhow::Result<Drawn> {
    let mut out = BTreeMap::new();
    let mut short = Vec::new();
    for class in &ds.classes {
        let n = class.train_normals.len();
        if n < shots {
            short.push(format!("class {} has {n}", class.name));
            continue;
        }
        let mut order: Vec<usize> = (0..n).collect();
        Rng::new(seed).shuffle(&mut order);
        out.insert(class.name.clone(), order[..shots].iter().map(|&i| class.train_normals[i].clone()).collect());
    }
    if !short.is_empty() {
        anyhow::bail!(
            "--shots {shots} needs {shots} normal training images per class ({}), but {}",
            where_normals(ds.layout),
            short.join(", ")
        );
    }
    Ok(out)
}

fn where_normals(layout: tokenclip::eval::dataset::Layout) -> &'static str {
    use tokenclip::eval::dataset::Layout;
    match layout {
        Layout::Mvtec => "from <class>/train/good/",
        Layout::Visa => "from the train split's normal rows of split_csv/1cls.csv",
        Layout::Folder => "from <class>/train/good/",
    }
}

/// A digest of the draw and the memory settings: results made with one memory never answer for
/// another, so the cache keeps them in a folder of their own.
pub fn cache_folder(drawn: &BTreeMap<String, Vec<PathBuf>>, shots: usize, seed: u64, settings: &str) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(format!("{shots}/{seed}/{settings}").as_bytes());
    for (class, paths) in drawn {
        h.update(class.as_bytes());
        for p in paths {
            h.update(p.to_string_lossy().as_bytes());
            h.update([0]);
        }
    }
    let hex: String = h.finalize().iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("few-shot-{shots}-{hex}")
}
