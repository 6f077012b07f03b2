//! `detect`'s run summary: `scores.csv` and `scores.json`, one row per input (DESIGN.md, "CLI
//! contract"), each written atomically.

use std::fmt::Display;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;
use tokenclip::io::output::write_atomic;

/// One input's result; a failed input has only `path` and `error`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ScoreRow {
    /// The input as reached from the arguments.
    pub path: String,
    /// The image-level anomaly score.
    pub score: Option<f32>,
    /// The largest value of the anomaly map.
    pub max: Option<f32>,
    /// Whether the score reached `--threshold` (`None` without a threshold).
    pub flagged: Option<bool>,
    /// The overlay written for it, relative to the output folder (name clashes get `~2`, so
    /// a script cannot guess it).
    pub overlay: Option<String>,
    /// The `.npy` map written for it (with `--save-maps`), relative to the output folder.
    pub map: Option<String>,
    /// Why the input was skipped.
    pub error: Option<String>,
}

/// `scores.json`'s top level.
#[derive(Serialize)]
struct Report<'a> {
    threshold: Option<f32>,
    images: &'a [ScoreRow],
}

/// Writes `dir/scores.csv` and `dir/scores.json` for `rows`, in their order.
///
/// CSV: header `path,score,max,flagged,overlay,map,error`, fields quoted as RFC 4180 says when they hold a
/// comma, a quote or a line break, floats written with the fewest digits that read back to the
/// same f32, empty cells for `None`. JSON: `{"threshold": x|null, "images": [{"path", "score",
/// "max", "flagged", "overlay", "map", "error"}, …]}` with `null` for `None` (and for NaN or infinite values,
/// which JSON cannot hold).
///
/// # Errors
/// If a file cannot be written (the folder must exist already).
pub fn write_scores(dir: &Path, rows: &[ScoreRow], threshold: Option<f32>) -> anyhow::Result<()> {
    write_atomic(&dir.join("scores.csv"), scores_csv(rows).as_bytes())?;
    let mut json =
        serde_json::to_vec_pretty(&Report { threshold, images: rows }).context("cannot serialise scores.json")?;
    json.push(b'\n');
    write_atomic(&dir.join("scores.json"), &json)?;
    Ok(())
}

/// The CSV text, one line per row after the header, each ended by `\n`.
fn scores_csv(rows: &[ScoreRow]) -> String {
    let mut out = String::from("path,score,max,flagged,overlay,map,error\n");
    for r in rows {
        let text = |v: &Option<String>| v.as_deref().map(csv_field).unwrap_or_default();
        let cells = [
            csv_field(&r.path),
            cell(r.score),
            cell(r.max),
            cell(r.flagged),
            text(&r.overlay),
            text(&r.map),
            text(&r.error),
        ];
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

/// `Display` of the value (shortest round-trip form for floats), or an empty cell.
fn cell<T: Display>(v: Option<T>) -> String {
    v.map(|v| v.to_string()).unwrap_or_default()
}

/// `s`, quoted with inner quotes doubled if it holds a comma, a quote or a line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(path: &str, score: f32) -> ScoreRow {
        ScoreRow {
            path: path.into(),
            score: Some(score),
            max: Some(0.75),
            flagged: Some(true),
            overlay: Some(format!("{path}.overlay.png")),
            map: None,
            error: None,
        }
    }

    #[test]
    fn csv_quotes_only_what_needs_it() {
        assert_eq!(csv_field("data/a.png"), "data/a.png");
        assert_eq!(csv_field("a,b.png"), "\"a,b.png\"");
        assert_eq!(csv_field("say \"hi\".png"), "\"say \"\"hi\"\".png\"");
        assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
        assert_eq!(csv_field("cr\r"), "\"cr\r\"");
    }

    #[test]
    fn csv_rows_with_none_cells_and_round_trip_floats() {
        let failed = ScoreRow {
            path: "b,c.jpg".into(),
            error: Some("cannot decode image: \"bad\"".into()),
            ..Default::default()
        };
        let unflagged = ScoreRow { flagged: None, ..row("c.png", 1e-7) };
        let csv = scores_csv(&[row("a.png", 0.1), failed, unflagged]);
        let want = "path,score,max,flagged,overlay,map,error\n\
                    a.png,0.1,0.75,true,a.png.overlay.png,,\n\
                    \"b,c.jpg\",,,,,,\"cannot decode image: \"\"bad\"\"\"\n\
                    c.png,0.0000001,0.75,,c.png.overlay.png,,\n";
        assert_eq!(csv, want);
        for v in [0.1f32, 1.0 / 3.0, 1e-7, 123456.79, f32::MIN_POSITIVE] {
            assert_eq!(cell(Some(v)).parse::<f32>().unwrap(), v);
        }
    }

    #[test]
    fn files_are_written_and_json_parses_back() {
        let dir = std::env::temp_dir().join(format!("tokenclip-scores-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let failed = ScoreRow { path: "x.png".into(), error: Some("unreadable".into()), ..Default::default() };
        let rows = [row("a.png", 0.25), failed, ScoreRow { score: Some(f32::NAN), ..row("n.png", 0.0) }];
        write_scores(&dir, &rows, Some(0.5)).unwrap();
        let csv = std::fs::read_to_string(dir.join("scores.csv")).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("scores.json")).unwrap()).unwrap();
        write_scores(&dir, &rows[..1], None).unwrap();
        let json2: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("scores.json")).unwrap()).unwrap();
        let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
        std::fs::remove_dir_all(&dir).unwrap();

        assert_eq!(csv.lines().count(), 4);
        assert_eq!(json["threshold"], 0.5);
        let images = json["images"].as_array().unwrap();
        assert_eq!(images.len(), 3);
        assert_eq!(
            images[0],
            serde_json::json!({"path": "a.png", "score": 0.25, "max": 0.75, "flagged": true,
                               "overlay": "a.png.overlay.png", "map": null, "error": null})
        );
        assert_eq!(images[1]["error"], "unreadable");
        assert!(images[1]["score"].is_null() && images[1]["flagged"].is_null());
        assert!(images[2]["score"].is_null(), "NaN becomes null");
        assert!(json2["threshold"].is_null());
        assert_eq!(names.len(), 2, "no temporary files left: {names:?}");
    }

    #[test]
    fn json_floats_are_f32_shortest() {
        let json = serde_json::to_string(&row("a", 0.1)).unwrap();
        assert!(json.contains("\"score\":0.1,"), "{json}");
    }
}
