//! The report as text: the papers' table (terminal and Markdown) and CSV.

use super::{ClassResult, Report};
use crate::eval::{AuproMode, MeanMetric, Metric, Undefined};

/// Table headings, in the order of [`crate::eval::ClassMetrics::fields`].
const HEADINGS: [&str; 7] = ["I-AUROC", "I-AP", "I-F1max", "P-AUROC", "P-AP", "P-F1max", "P-AUPRO"];

const SUPERSCRIPTS: [char; 10] = ['⁰', '¹', '²', '³', '⁴', '⁵', '⁶', '⁷', '⁸', '⁹'];

/// The table's footnotes: undefined reasons numbered in order of first appearance, and the
/// columns whose mean left classes out (marked `*`).
#[derive(Default)]
struct Footnotes(Vec<Undefined>, Vec<(&'static str, MeanMetric)>);

impl Footnotes {
    fn mark(&mut self, r: Undefined) -> String {
        let i = match self.0.iter().position(|&x| x == r) {
            Some(i) => i,
            None => {
                self.0.push(r);
                self.0.len() - 1
            }
        };
        (i + 1).to_string().chars().map(|d| SUPERSCRIPTS[d.to_digit(10).unwrap_or(0) as usize]).collect()
    }

    fn cell(&mut self, m: Metric) -> String {
        match m {
            Metric::Value(_) => m.percent(),
            Metric::Undefined(r) => format!("n/a{}", self.mark(r)),
        }
    }

    fn mean_cell(&mut self, heading: &'static str, m: MeanMetric) -> String {
        let mut s = self.cell(m.value);
        if m.skipped > 0 && m.value.value().is_some() {
            s.push('*');
            self.1.push((heading, m));
        }
        s
    }

    fn lines(&self) -> Vec<String> {
        let mut f = Footnotes::default();
        let mut out: Vec<String> = self.0.iter().map(|&r| format!("{} {r}", f.mark(r))).collect();
        if let Some((_, first)) = self.1.first() {
            let of = |m: &MeanMetric| format!("{} of {} classes", m.used, m.used + m.skipped);
            let what = "* mean over the classes where the metric is defined";
            if self.1.iter().all(|(_, m)| (m.used, m.skipped) == (first.used, first.skipped)) {
                out.push(format!("{what} ({})", of(first)));
            } else {
                let each: Vec<String> = self.1.iter().map(|(h, m)| format!("{h} {}", of(m))).collect();
                out.push(format!("{what}: {}", each.join(", ")));
            }
        }
        out
    }
}

/// Header, one row per class, the mean row (bold in Markdown), as cells.
fn rows(r: &Report, notes: &mut Footnotes, bold: bool) -> Vec<Vec<String>> {
    let mut out = vec![header()];
    for c in &r.classes {
        out.push(class_row(c, notes));
    }
    let mean = if bold { "**mean**" } else { "mean" };
    let mut row = vec![mean.to_string(), r.classes.iter().map(|c| c.images).sum::<usize>().to_string()];
    row.extend(r.mean.fields().iter().zip(HEADINGS).map(|((_, m), h)| notes.mean_cell(h, *m)));
    out.push(row);
    out
}

fn header() -> Vec<String> {
    ["class", "images"].iter().chain(HEADINGS.iter()).map(|h| h.to_string()).collect()
}

fn class_row(c: &ClassResult, notes: &mut Footnotes) -> Vec<String> {
    let mut row = vec![c.metrics.class.clone(), c.images.to_string()];
    row.extend(c.metrics.fields().iter().map(|(_, m)| notes.cell(*m)));
    row
}

fn aupro_note(mode: AuproMode) -> &'static str {
    match mode {
        AuproMode::Sampled => "sampled (AnomalyCLIP's 200 thresholds, as the published tables)",
        _ => "exact (every threshold up to FPR 0.3)",
    }
}

impl Report {
    /// The table for a terminal: aligned columns, ×100 with one decimal, then the footnotes.
    pub fn text_table(&self) -> String {
        let mut notes = Footnotes::default();
        let rows = rows(self, &mut notes, false);
        let widths: Vec<usize> =
            (0..rows[0].len()).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
        let mut out = String::new();
        for row in &rows {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (c, &w))| if i == 0 { format!("{c:<w$}") } else { format!("{c:>w$}") })
                .collect();
            out.push_str(cells.join("  ").trim_end());
            out.push('\n');
        }
        for line in notes.lines() {
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    /// `report.md`.
    pub fn markdown(&self) -> String {
        let i = &self.info;
        let sum = |f: fn(&ClassResult) -> usize| self.classes.iter().map(f).sum::<usize>();
        let skipped_images = sum(|c| c.skipped_images);
        let mut out = format!("# tokenclip evaluation\n\n- Model: `{}` (S = {})\n", i.model, i.input_size);
        out.push_str(&format!(
            "- Data: `{}`, {} layout: {} classes, {} images evaluated ({} normal, {} anomalous), {skipped_images} skipped\n",
            i.data,
            i.layout.title(),
            self.classes.len(),
            sum(|c| c.images),
            sum(|c| c.normal),
            sum(|c| c.anomalous)
        ));
        out.push_str(&format!("- Backend: {}\n- AUPRO: {}\n", i.backend, aupro_note(self.aupro_mode)));
        if let Some(f) = &i.few_shot {
            out.push_str(&format!(
                "- Few-shot: k = {} normal training images per class, drawn with seed {} (listed below){}\n",
                f.shots,
                f.seed,
                if f.unreadable.is_empty() {
                    String::new()
                } else {
                    format!("; {} unreadable, left out", f.unreadable.len())
                }
            ));
        }
        out.push_str("- Metrics ×100, one decimal; the mean averages the classes where a metric is defined.\n\n");
        let mut notes = Footnotes::default();
        out.push_str(&markdown_table(&rows(self, &mut notes, true)));
        if let Some(o) = &self.overall {
            out.push_str("\n## Overall (all classes pooled)\n\n");
            out.push_str(&markdown_table(&[header(), class_row(o, &mut notes)]));
        }
        if !notes.0.is_empty() || !notes.1.is_empty() {
            out.push('\n');
            for line in notes.lines() {
                out.push_str(&format!("{line}  \n"));
            }
        }
        let references: Vec<String> = i
            .few_shot
            .iter()
            .flat_map(|f| {
                f.references
                    .iter()
                    .map(|(c, r)| format!("{c}: {}", r.join(", ")))
                    .chain(f.unreadable.iter().map(|u| format!("unreadable: {u}")))
            })
            .collect();
        let lists = [
            ("Few-shot references", references),
            ("Skipped", self.skipped.iter().map(|s| s.to_string()).collect::<Vec<_>>()),
            ("Dataset problems", self.dataset_problems.clone()),
        ];
        for (title, items) in lists {
            if !items.is_empty() {
                out.push_str(&format!("\n## {title}\n\n"));
                for item in items {
                    out.push_str(&format!("- {}\n", item.replace('|', "\\|")));
                }
            }
        }
        out
    }

    /// `report.csv`: one row per class and a `mean` row; metric values are fractions at full
    /// precision, empty where undefined, with the reasons in `notes`.
    pub fn csv(&self) -> String {
        let names = self.classes.first().map(|c| c.metrics.fields().map(|(n, _)| n)).unwrap_or([
            "image_auroc",
            "image_ap",
            "image_f1_max",
            "pixel_auroc",
            "pixel_ap",
            "pixel_f1_max",
            "pixel_aupro",
        ]);
        let mut out = format!(
            "class,images,normal,anomalous,skipped_images,{},pixel_aupro_exact,pixel_aupro_sampled,notes\n",
            names.join(",")
        );
        let value = |m: Metric| m.value().map(|v| v.to_string()).unwrap_or_default();
        for c in &self.classes {
            let metrics: Vec<(&str, Metric)> = c
                .metrics
                .fields()
                .into_iter()
                .chain([("pixel_aupro_exact", c.pixel_aupro_exact), ("pixel_aupro_sampled", c.pixel_aupro_sampled)])
                .collect();
            let notes: Vec<String> =
                metrics.iter().filter_map(|(n, m)| m.undefined().map(|r| format!("{n}: {r}"))).collect();
            let mut cells = vec![csv_field(&c.metrics.class)];
            cells.extend([c.images, c.normal, c.anomalous, c.skipped_images].map(|n| n.to_string()));
            cells.extend(metrics.iter().map(|(_, m)| value(*m)));
            cells.push(csv_field(&notes.join("; ")));
            out.push_str(&cells.join(","));
            out.push('\n');
        }
        let sum = |f: fn(&ClassResult) -> usize| self.classes.iter().map(f).sum::<usize>().to_string();
        let means: Vec<(&str, MeanMetric)> = self
            .mean
            .fields()
            .into_iter()
            .chain([("pixel_aupro_exact", self.mean_aupro_exact), ("pixel_aupro_sampled", self.mean_aupro_sampled)])
            .collect();
        let notes: Vec<String> = means
            .iter()
            .filter(|(_, m)| m.skipped > 0)
            .map(|(n, m)| format!("{n}: mean of {} classes ({} skipped)", m.used, m.skipped))
            .collect();
        let mut cells = vec![
            "mean".to_string(),
            sum(|c| c.images),
            sum(|c| c.normal),
            sum(|c| c.anomalous),
            sum(|c| c.skipped_images),
        ];
        cells.extend(means.iter().map(|(_, m)| value(m.value)));
        cells.push(csv_field(&notes.join("; ")));
        out.push_str(&cells.join(","));
        out.push('\n');
        out
    }
}

fn markdown_table(rows: &[Vec<String>]) -> String {
    let esc = |c: &String| c.replace('|', "\\|");
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        out.push_str(&format!("| {} |\n", row.iter().map(esc).collect::<Vec<_>>().join(" | ")));
        if i == 0 {
            let align: Vec<&str> = (0..row.len()).map(|j| if j == 0 { ":--" } else { "--:" }).collect();
            out.push_str(&format!("|{}|\n", align.join("|")));
        }
    }
    out
}

/// A CSV cell, quoted as RFC 4180 says when it holds a comma, a quote or a line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests;
