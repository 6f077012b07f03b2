//! The VisA layout: the test split of `split_csv/1cls.csv`, as AnomalyCLIP's
//! `generate_dataset_json/visa.py` reads it. Columns are found by name in the header
//! (`object,split,label,image,mask`); `label` is `normal` or `anomaly`; `image` and `mask` are
//! relative to the dataset folder. VisA has no defect types: anomalous samples get `anomaly`.

use std::collections::BTreeMap;
use std::path::Path;

use super::files::is_image;
use super::{ClassSet, Dataset, DatasetError, Sample};

/// The split file, relative to the dataset folder.
pub(super) const CSV: &str = "split_csv/1cls.csv";

const COLUMNS: [&str; 5] = ["object", "split", "label", "image", "mask"];

/// Reads the test split of `dir/split_csv/1cls.csv` into `ds`.
pub(super) fn read(dir: &Path, ds: &mut Dataset) -> Result<(), DatasetError> {
    let path = dir.join(CSV);
    let name = path.display().to_string();
    let text = std::fs::read_to_string(&path).map_err(|source| DatasetError::Io { path: name.clone(), source })?;
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let header = lines.next().map(|(_, l)| fields(l)).unwrap_or_default();
    let mut index = [0usize; 5];
    for (slot, col) in index.iter_mut().zip(COLUMNS) {
        *slot = header.iter().position(|h| h.trim().eq_ignore_ascii_case(col)).ok_or_else(|| DatasetError::Csv {
            path: name.clone(),
            line: 1,
            what: format!("no `{col}` column (the header must name {})", COLUMNS.join(",")),
        })?;
    }
    let mut classes: BTreeMap<String, (Vec<Sample>, Vec<String>)> = BTreeMap::new();
    let mut train: BTreeMap<String, Vec<std::path::PathBuf>> = BTreeMap::new();
    for (i, line) in lines {
        let row = fields(line);
        let Some([object, split, label, image, mask]) = pick(&row, &index) else {
            ds.problems.push(format!(
                "{name}, line {}: expected {} fields, got {}; skipped",
                i + 1,
                header.len(),
                row.len()
            ));
            continue;
        };
        if split.eq_ignore_ascii_case("train") && label.eq_ignore_ascii_case("normal") {
            train.entry(object.to_string()).or_default().push(dir.join(image));
            continue;
        }
        if !split.eq_ignore_ascii_case("test") {
            continue;
        }
        let (samples, problems) = classes.entry(object.to_string()).or_default();
        let label = match label.to_ascii_lowercase().as_str() {
            "normal" => false,
            "anomaly" => true,
            other => {
                problems
                    .push(format!("{name}, line {}: label `{other}` is neither normal nor anomaly; skipped", i + 1));
                continue;
            }
        };
        let image = dir.join(image);
        if !image.is_file() || !is_image(&image) {
            let why = if image.is_file() { "not a PNG or JPEG file" } else { "not found" };
            problems.push(format!("{}: {why} (listed on line {} of {name}); skipped", image.display(), i + 1));
            continue;
        }
        let mask = if label && !mask.is_empty() { Some(dir.join(mask)).filter(|m| m.is_file()) } else { None };
        if label && mask.is_none() {
            problems.push(format!(
                "{}: no mask ({}); left out of the pixel metrics",
                image.display(),
                if mask_is_listed(&row, &index) { "the listed mask file is missing" } else { "none listed" }
            ));
        }
        let defect = if label { "anomaly" } else { "good" }.to_string();
        samples.push(Sample { image, label, mask, defect });
    }
    ds.classes.extend(classes.into_iter().map(|(name, (samples, problems))| {
        let mut train_normals = train.remove(&name).unwrap_or_default();
        train_normals.sort();
        ClassSet { name, samples, problems, train_normals }
    }));
    Ok(())
}

fn mask_is_listed(row: &[String], index: &[usize; 5]) -> bool {
    row.get(index[4]).is_some_and(|m| !m.trim().is_empty())
}

/// The five columns of a row, trimmed, or `None` if the row is too short.
fn pick<'a>(row: &'a [String], index: &[usize; 5]) -> Option<[&'a str; 5]> {
    let get = |i: usize| row.get(index[i]).map(|s| s.trim());
    Some([get(0)?, get(1)?, get(2)?, get(3)?, get(4)?])
}

/// The fields of one CSV line (RFC 4180 quoting: `"a,b"` and `""` inside quotes).
fn fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.trim_end_matches('\r').chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    out
}

#[cfg(test)]
mod tests {
    use super::fields;

    #[test]
    fn csv_fields_follow_rfc_4180_quoting() {
        assert_eq!(fields("a,b,,c"), ["a", "b", "", "c"]);
        assert_eq!(fields("\"x,y\",\"say \"\"hi\"\"\"\r"), ["x,y", "say \"hi\""]);
        assert_eq!(fields(""), [""]);
    }
}
