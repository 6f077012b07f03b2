//! ROC and precision-recall curves as PNG: one plot of each per class and for all classes pooled
//! ("overall": every image score, and every pixel, of every class in one set — not the mean of
//! the class curves). Each plot shows the image-level curve (blue) and the pixel-level one (red),
//! with the area (AUROC, or AP) in the legend, over a grid at steps of 0.2. Curves are the ones the
//! metrics computed (at most [`MAX_CURVE_POINTS`](super::MAX_CURVE_POINTS) points, so a plot is
//! cheap whatever the pixel count), joined by straight lines; text uses the overlay's bitmap font.

use super::report::ClassResult;
use super::Metric;
use crate::io::image::RgbImage;
use crate::io::overlay::canvas::{text_width, Canvas, GLYPH_H, GLYPH_W};

const WIDTH: usize = 560;
const HEIGHT: usize = 500;
/// The plot area: left, top, right, bottom.
const AREA: (usize, usize, usize, usize) = (76, 44, 540, 380);
const SCALE: usize = 2;
const BLACK: [u8; 3] = [0, 0, 0];
const GRID: [u8; 3] = [225, 225, 225];
const DIAGONAL: [u8; 3] = [170, 170, 170];
const IMAGE_COLOUR: [u8; 3] = [31, 119, 180];
const PIXEL_COLOUR: [u8; 3] = [214, 39, 40];

/// Which curve a plot shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlotKind {
    /// TPR against FPR, with AUROC.
    Roc,
    /// Precision against recall, with AP.
    PrecisionRecall,
}

impl PlotKind {
    /// `roc` or `pr` (file names).
    pub fn short(self) -> &'static str {
        match self {
            PlotKind::Roc => "roc",
            PlotKind::PrecisionRecall => "pr",
        }
    }
}

/// One curve: its legend and its points (x, y in [0, 1]).
struct Series {
    legend: String,
    points: Vec<(f64, f64)>,
    colour: [u8; 3],
}

fn series(kind: PlotKind, c: &ClassResult) -> [Series; 2] {
    let make = |level: &str, curves: Option<&super::Curves>, area: Metric, colour| {
        let (name, points) = match (kind, curves) {
            (PlotKind::Roc, Some(cv)) => ("AUROC", cv.roc.iter().map(|p| (p.fpr, p.tpr)).collect()),
            (PlotKind::PrecisionRecall, Some(cv)) => ("AP", cv.pr.iter().map(|p| (p.recall, p.precision)).collect()),
            (PlotKind::Roc, None) => ("AUROC", Vec::new()),
            (PlotKind::PrecisionRecall, None) => ("AP", Vec::new()),
        };
        let value = match area {
            Metric::Value(_) => area.percent(),
            Metric::Undefined(r) => format!("n/a ({r})"),
        };
        Series { legend: format!("{level} {name} {value}"), points, colour }
    };
    let m = &c.metrics;
    let (image_area, pixel_area) = match kind {
        PlotKind::Roc => (m.image_auroc, m.pixel_auroc),
        PlotKind::PrecisionRecall => (m.image_ap, m.pixel_ap),
    };
    [
        make("image", Some(&c.image_curves), image_area, IMAGE_COLOUR),
        make("pixel", c.pixel_curves.as_ref(), pixel_area, PIXEL_COLOUR),
    ]
}

/// Where the data point (x, y) lands on the canvas.
fn to_canvas(x: f64, y: f64) -> (i64, i64) {
    let (l, t, r, b) = AREA;
    let px = l as f64 + x.clamp(0.0, 1.0) * (r - l) as f64;
    let py = b as f64 - y.clamp(0.0, 1.0) * (b - t) as f64;
    (px.round() as i64, py.round() as i64)
}

/// Shortens `s` to at most `max` characters.
fn fit(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        s.chars().take(max.saturating_sub(2)).chain("..".chars()).collect()
    }
}

fn axes(c: &mut Canvas, kind: PlotKind) {
    let (l, t, r, b) = AREA;
    for i in 0..=5 {
        let v = f64::from(i) / 5.0;
        let (x, _) = to_canvas(v, 0.0);
        let (_, y) = to_canvas(0.0, v);
        c.line((x, t as i64), (x, b as i64), 1, GRID);
        c.line((l as i64, y), (r as i64, y), 1, GRID);
        let label = if i == 0 {
            "0".to_string()
        } else if i == 5 {
            "1".to_string()
        } else {
            format!("0.{}", 2 * i)
        };
        let w = text_width(&label, SCALE);
        c.text((x as usize).saturating_sub(w / 2), b + 8, SCALE, &label, BLACK);
        c.text(l.saturating_sub(w + 8), (y as usize).saturating_sub(GLYPH_H * SCALE / 2), SCALE, &label, BLACK);
    }
    if kind == PlotKind::Roc {
        for k in (0..40).step_by(2) {
            let (a, b) = (f64::from(k) / 40.0, f64::from(k + 1) / 40.0);
            c.line(to_canvas(a, a), to_canvas(b, b), 1, DIAGONAL);
        }
    }
    for (p, q) in [((l, t), (r, t)), ((r, t), (r, b)), ((r, b), (l, b)), ((l, b), (l, t))] {
        c.line((p.0 as i64, p.1 as i64), (q.0 as i64, q.1 as i64), 1, BLACK);
    }
    let (xt, yt) = match kind {
        PlotKind::Roc => ("false positive rate", "true positive rate"),
        PlotKind::PrecisionRecall => ("recall", "precision"),
    };
    c.text((l + r - text_width(xt, SCALE)) / 2, b + 30, SCALE, xt, BLACK);
    c.text_up(6, (t + b - text_width(yt, SCALE)) / 2, SCALE, yt, BLACK);
}

/// The `kind` plot of `class` titled `title`: a `560 × 500` RGB image.
pub fn plot(kind: PlotKind, title: &str, class: &ClassResult) -> RgbImage {
    let mut data = vec![255u8; WIDTH * HEIGHT * 3];
    let mut c = Canvas { data: &mut data, width: WIDTH, height: HEIGHT };
    axes(&mut c, kind);
    let heading = fit(title, (WIDTH - 20) / ((GLYPH_W + 1) * SCALE));
    c.text((WIDTH - text_width(&heading, SCALE)) / 2, 14, SCALE, &heading, BLACK);
    for (i, s) in series(kind, class).iter().enumerate() {
        for w in s.points.windows(2) {
            c.line(to_canvas(w[0].0, w[0].1), to_canvas(w[1].0, w[1].1), 2, s.colour);
        }
        if let [only] = s.points.as_slice() {
            let p = to_canvas(only.0, only.1);
            c.line(p, p, 4, s.colour);
        }
        let y = AREA.3 as i64 + 66 + 24 * i as i64;
        c.line((AREA.0 as i64, y), (AREA.0 as i64 + 28, y), 3, s.colour);
        let legend = fit(&s.legend, (WIDTH - AREA.0 - 40) / ((GLYPH_W + 1) * SCALE));
        c.text(AREA.0 + 38, (y as usize).saturating_sub(GLYPH_H * SCALE / 2), SCALE, &legend, BLACK);
    }
    RgbImage { width: WIDTH as u32, height: HEIGHT as u32, data, alpha: None }
}

/// A class name as a file name: characters other than letters, digits, `-`, `_` and `.` become
/// `_`.
pub fn file_stem(name: &str) -> String {
    let s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    if s.is_empty() || s.starts_with('.') {
        format!("_{s}")
    } else {
        s
    }
}

/// Writes `<stem>_roc.png` and `<stem>_pr.png` for every class and, when the report has it, for
/// the pooled `overall`, into `dir` (created if missing); returns the paths.
///
/// # Errors
/// [`crate::io::InputError`] naming the file or folder that could not be written.
#[cfg(not(target_arch = "wasm32"))]
pub fn write_plots(
    dir: &std::path::Path,
    report: &super::report::Report,
) -> Result<Vec<std::path::PathBuf>, crate::io::InputError> {
    use crate::io::output::{ensure_dir, write_atomic};
    use crate::io::overlay::encode_png;
    ensure_dir(dir)?;
    let mut used = std::collections::HashSet::new();
    let mut out = Vec::new();
    let all = report
        .classes
        .iter()
        .map(|c| (c, c.metrics.class.clone(), format!("class_{}", file_stem(&c.metrics.class))))
        .chain(report.overall.iter().map(|o| (o, "all classes pooled".to_string(), "overall".to_string())));
    for (class, title, base) in all {
        let mut stem = base.clone();
        let mut n = 2;
        while !used.insert(stem.clone()) {
            stem = format!("{base}~{n}");
            n += 1;
        }
        for kind in [PlotKind::Roc, PlotKind::PrecisionRecall] {
            let name = match kind {
                PlotKind::Roc => format!("{title}: ROC"),
                PlotKind::PrecisionRecall => format!("{title}: precision-recall"),
            };
            let path = dir.join(format!("{stem}_{}.png", kind.short()));
            write_atomic(&path, &encode_png(&plot(kind, &name, class))?)?;
            out.push(path);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::report::ClassResult;
    use crate::eval::{image_metrics, AuproMode, ClassMetrics, Undefined};

    #[test]
    fn file_stems_are_safe() {
        assert_eq!(file_stem("metal_nut"), "metal_nut");
        assert_eq!(file_stem("a b/c:d"), "a_b_c_d");
        assert_eq!(file_stem(""), "_");
        assert_eq!(file_stem(".."), "_..");
    }

    #[test]
    fn plots_draw_curves_inside_the_area() {
        let image = image_metrics(&[0.1, 0.8, 0.3, 0.6], &[false, true, false, true]).unwrap();
        let none = Metric::Undefined(Undefined::NotEvaluated);
        let c = ClassResult {
            metrics: ClassMetrics::new("x", &image, None, AuproMode::Sampled),
            pixel_aupro_exact: none,
            pixel_aupro_sampled: none,
            images: 4,
            normal: 2,
            anomalous: 2,
            skipped_images: 0,
            pixel_images: 0,
            pixel: None,
            image_curves: image.curves,
            pixel_curves: None,
        };
        for kind in [PlotKind::Roc, PlotKind::PrecisionRecall] {
            let img = plot(kind, "x: test", &c);
            assert_eq!((img.width, img.height, img.data.len()), (WIDTH as u32, HEIGHT as u32, WIDTH * HEIGHT * 3));
            let blue = img.data.chunks_exact(3).filter(|p| *p == IMAGE_COLOUR).count();
            assert!(blue > 300, "{kind:?}: {blue} curve pixels");
            // Perfect separation: the ROC goes up the left edge, the PR along the top.
            let (x, y) = match kind {
                PlotKind::Roc => to_canvas(0.0, 0.5),
                PlotKind::PrecisionRecall => to_canvas(0.5, 1.0),
            };
            let i = (y as usize * WIDTH + x as usize) * 3;
            assert_eq!(img.data[i..i + 3], IMAGE_COLOUR, "{kind:?}");
        }
    }
}
