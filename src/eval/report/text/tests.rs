//! The report's text forms on a small report: table, Markdown, CSV.

use super::*;
use crate::eval::dataset::Layout;
use crate::eval::report::{Evaluation, RunInfo};
use crate::eval::{image_metrics, ClassMetrics};

fn class(name: &str, scores: &[f32], labels: &[bool]) -> ClassResult {
    let image = image_metrics(scores, labels).unwrap();
    let none = Metric::Undefined(Undefined::NotEvaluated);
    let anomalous = labels.iter().filter(|&&l| l).count();
    ClassResult {
        metrics: ClassMetrics::new(name, &image, None, AuproMode::Sampled),
        pixel_aupro_exact: none,
        pixel_aupro_sampled: none,
        images: scores.len(),
        normal: scores.len() - anomalous,
        anomalous,
        skipped_images: 0,
        pixel_images: 0,
        pixel: None,
        image_curves: image.curves,
        pixel_curves: None,
    }
}

fn report() -> Report {
    let info = RunInfo {
        model: "m.safetensors".into(),
        input_size: 8,
        data: "d".into(),
        layout: Layout::Folder,
        backend: "cpu".into(),
        few_shot: None,
    };
    let classes = vec![class("a, \"b\" | c", &[0.1, 0.9, 0.4], &[false, true, true]), class("z", &[0.2], &[false])];
    Report::new(info, AuproMode::Sampled, Evaluation { classes, ..Evaluation::default() }, Vec::new())
}

#[test]
fn table_marks_undefined_cells_and_partial_means() {
    let t = report().text_table();
    let lines: Vec<&str> = t.lines().collect();
    assert!(lines[1].starts_with("a, \"b\" | c  ") && lines[1].contains("100.0"), "{t}");
    assert!(lines[2].starts_with("z ") && lines[2].contains("n/a¹") && lines[2].contains("n/a²"), "{t}");
    assert!(lines[3].starts_with("mean") && lines[3].contains("100.0*"), "{t}");
    assert!(
        t.contains("¹ not evaluated") && t.contains("² no anomalous samples") && t.contains("³ no class with a value"),
        "{t}"
    );
    assert!(t.contains("* mean over the classes where the metric is defined (1 of 2 classes)"), "{t}");
}

#[test]
fn markdown_escapes_pipes_and_csv_quotes_fields() {
    let r = report();
    let md = r.markdown();
    assert!(md.contains("| a, \"b\" \\| c | 3 | 100.0 |"), "{md}");
    assert!(md.contains("| **mean** | 4 |"), "{md}");
    let csv = r.csv();
    let rows: Vec<&str> = csv.lines().collect();
    assert!(rows[1].starts_with("\"a, \"\"b\"\" | c\",3,1,2,0,1,1,1,,,,,,,"), "{csv}");
    assert!(rows[2].starts_with("z,1,1,0,0,,,,"), "{csv}");
    assert!(rows[3].starts_with("mean,4,2,2,0,1,1,1,,"), "{csv}");
    assert!(rows[3].contains("image_auroc: mean of 1 classes (1 skipped)"), "{csv}");
    let json: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
    assert_eq!(json["classes"][1]["image_auroc"]["undefined"], "no_anomalous");
    assert_eq!(json["mean"]["pixel_auroc"]["value"]["undefined"], "no_defined_class");
}
