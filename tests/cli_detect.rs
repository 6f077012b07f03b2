//! `tokenclip import --prompts` and `tokenclip detect` end to end: files, folders and globs, the
//! outputs of DESIGN.md's CLI contract, maps equal to the PyTorch reference for images our
//! decoder reads exactly like PIL (PNGs), and every bad input of the issue: a model without text
//! embeddings, prompts for another CLIP, an empty folder, corrupt / tiny / huge / non-square
//! images mixed with good ones, and an output folder that cannot be written.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::clip::{scratch, shared_data};
use common::detect::{assert_max_abs, tiny_clip, DetectFixture};
use tokenclip::io::npy::read_npy_f32;

fn tokenclip(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tokenclip"))
        .args(args)
        .env("XDG_RUNTIME_DIR", std::env::temp_dir())
        .output()
        .unwrap()
}

fn os<'a>(items: &'a [&'a dyn AsRef<std::ffi::OsStr>]) -> Vec<&'a std::ffi::OsStr> {
    items.iter().map(|s| s.as_ref()).collect()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `import --clip tiny --prompts P --image-size 64 --dpam-start 1 --feature-layers 4` (variant v1).
fn import_with_prompts(dir: &Path, prompts: &dyn AsRef<std::ffi::OsStr>, extra: &[&str]) -> (PathBuf, Output) {
    let clip = tiny_clip(dir);
    let out = dir.join(format!("model-{}.safetensors", extra.join("")));
    let items: [&dyn AsRef<std::ffi::OsStr>; 13] = [
        &"import",
        &"--clip",
        &clip,
        &"--prompts",
        prompts,
        &"--image-size",
        &"64",
        &"--dpam-start",
        &"1",
        &"--feature-layers",
        &"4",
        &"--out",
        &out,
    ];
    let mut args: Vec<&std::ffi::OsStr> = os(&items);
    args.extend(extra.iter().map(|s| std::ffi::OsStr::new(*s)));
    let run = tokenclip(&args);
    (out, run)
}

fn m4_model(dir: &Path) -> PathBuf {
    let prompts = common::clip::fixture_path("detect_tiny/prompts_m4.safetensors");
    let (model, run) = import_with_prompts(dir, &prompts, &[]);
    assert!(run.status.success(), "{}", stderr(&run));
    let info = String::from_utf8_lossy(&run.stdout);
    assert!(info.contains("M = 4 subspaces"), "{info}");
    model
}

fn detect_folder_matches_the_reference(backend: &str) {
    let fx = DetectFixture::load();
    let dir = scratch(&format!("detect-{backend}"));
    let model = m4_model(&dir);
    let input = dir.join("in");
    std::fs::create_dir_all(input.join("sub")).unwrap();
    let data = shared_data();
    std::fs::copy(data.join(&fx.images[0]), input.join("a.png")).unwrap();
    std::fs::copy(data.join(&fx.images[1]), input.join("sub/carpet.png")).unwrap();
    std::fs::copy(data.join(&fx.images[2]), input.join("textile.jpg")).unwrap();
    let out = dir.join("out");
    let run = tokenclip(&os(&[
        &"--backend",
        &backend,
        &"detect",
        &"--model",
        &model,
        &"--out",
        &out,
        &"--save-maps",
        &"--map-size",
        &"model",
        &"--threshold",
        &"0.3",
        &input,
    ]));
    assert!(run.status.success(), "{}", stderr(&run));
    let inputs = [(0, "a", "a.png"), (1, "sub/carpet", "sub/carpet.png"), (2, "textile", "textile.jpg")];
    for (i, stem, file) in inputs {
        let (map, shape) = read_npy_f32(&std::fs::read(out.join(format!("{stem}.map.npy"))).unwrap()).unwrap();
        assert_eq!(shape, [64, 64]);
        // Decoding (PNG, and JPEG as libjpeg-turbo) and the squash resize match PIL exactly, so
        // the whole pipeline is compared.
        assert_max_abs(&format!("{backend}: {stem} map"), &map, &fx.get(&format!("v1.{i}.map")).0, 1e-4);
        let overlay = image::open(out.join(format!("{stem}.overlay.png"))).unwrap();
        let src = tokenclip::io::image::read_image(&input.join(file), &Default::default()).unwrap();
        assert_eq!(overlay.height(), src.height);
        assert!(overlay.width() > src.width, "the overlay carries a colour bar on the right");
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("scores.json")).unwrap()).unwrap();
    let images = json["images"].as_array().unwrap();
    assert_eq!(images.len(), 3);
    for row in images {
        let path = row["path"].as_str().unwrap();
        let i = inputs.iter().position(|(.., f)| path.ends_with(f)).unwrap();
        let want = fx.get(&format!("v1.{i}.score")).0[0];
        let got = row["score"].as_f64().unwrap() as f32;
        assert_max_abs(&format!("{backend}: score {i}"), &[got], &[want], 1e-5);
        assert_eq!(row["flagged"].as_bool().unwrap(), got >= 0.3);
    }
    let csv = std::fs::read_to_string(out.join("scores.csv")).unwrap();
    assert_eq!(csv.lines().next().unwrap(), "path,score,max,flagged,overlay,map,error");
    assert_eq!(csv.lines().count(), 4);
    assert_no_temp_files(&out);
}

/// `scores.json` / `scores.csv` name each image's output files, clashing names included.
#[test]
fn scores_name_each_images_output_files() {
    let dir = scratch("detect-names");
    let model = m4_model(&dir);
    let image = shared_data().join("saa-demo/carpet.png");
    for sub in ["x", "y"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        std::fs::copy(&image, dir.join(sub).join("a.png")).unwrap();
    }
    let out = dir.join("out");
    let (a, b) = (dir.join("x/a.png"), dir.join("y/a.png"));
    let run =
        tokenclip(&os(&[&"--backend", &"cpu", &"detect", &"--model", &model, &"--out", &out, &"--save-maps", &a, &b]));
    assert!(run.status.success(), "{}", stderr(&run));
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("scores.json")).unwrap()).unwrap();
    let rows = json["images"].as_array().unwrap();
    let names: Vec<(&str, &str)> =
        rows.iter().map(|r| (r["overlay"].as_str().unwrap(), r["map"].as_str().unwrap())).collect();
    assert_eq!(names, [("a.overlay.png", "a.map.npy"), ("a~2.overlay.png", "a~2.map.npy")]);
    for (overlay, map) in names {
        assert!(out.join(overlay).is_file() && out.join(map).is_file());
    }
    let csv = std::fs::read_to_string(out.join("scores.csv")).unwrap();
    assert!(csv.lines().nth(2).unwrap().ends_with(",a~2.overlay.png,a~2.map.npy,"), "{csv}");
}

#[test]
fn detect_matches_reference_cpu() {
    detect_folder_matches_the_reference("cpu");
}

#[test]
fn detect_matches_reference_gpu() {
    if common::gpu("detect_matches_reference_gpu").is_some() {
        detect_folder_matches_the_reference("gpu");
    }
}

fn assert_no_temp_files(dir: &Path) {
    for e in walk(dir) {
        let name = e.file_name().unwrap().to_string_lossy().into_owned();
        assert!(!name.contains(".tmp"), "temporary file left behind: {}", e.display());
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Good images in a run with bad ones are still processed; the bad ones are named, marked in
/// scores.csv, and make the exit status 2. Globs, original-size maps, and edge-sized images.
#[test]
fn detect_skips_bad_images_and_keeps_going() {
    let dir = scratch("detect-mixed");
    let model = m4_model(&dir);
    let input = dir.join("in");
    std::fs::create_dir_all(&input).unwrap();
    std::fs::copy(shared_data().join("textile-conformal-sample/local/textile_0001.jpg"), input.join("good.jpg"))
        .unwrap();
    std::fs::write(input.join("corrupt.png"), b"\x89PNG\r\n\x1a\n not really").unwrap();
    std::fs::write(input.join("huge.png"), common::png_with_size(100_000, 100_000)).unwrap();
    image::RgbImage::from_pixel(1, 1, image::Rgb([200, 10, 10])).save(input.join("tiny.png")).unwrap();
    image::RgbImage::from_fn(40, 7, |x, y| image::Rgb([(x * 6) as u8, (y * 30) as u8, 99]))
        .save(input.join("wide.png"))
        .unwrap();
    // Damaged JPEGs (issue: no silent differences): a cut scan, a corrupt Huffman table, an
    // absurd frame size. Each gets its own error and the run goes on.
    let jpeg = std::fs::read(input.join("good.jpg")).unwrap();
    let at = |code: u8| jpeg.windows(2).position(|w| w == [0xff, code]).unwrap();
    let mut cut = jpeg[..at(0xda) + 2000].to_vec();
    cut.extend([0xff, 0xd9]);
    std::fs::write(input.join("cut.jpg"), cut).unwrap();
    let mut table = jpeg.clone();
    table[at(0xc4) + 5] = 16;
    std::fs::write(input.join("table.jpg"), table).unwrap();
    let mut huge = jpeg.clone();
    let sof = at(0xc0);
    huge[sof + 5..sof + 9].copy_from_slice(&[0xff; 4]);
    std::fs::write(input.join("frame.jpg"), huge).unwrap();
    let out = dir.join("out");
    let glob = input.join("*.png");
    let run = tokenclip(&os(&[
        &"--backend",
        &"cpu",
        &"detect",
        &"--model",
        &model,
        &"--out",
        &out,
        &"--save-maps",
        &input.join("good.jpg"),
        &input.join("cut.jpg"),
        &input.join("table.jpg"),
        &input.join("frame.jpg"),
        &glob,
        &dir.join("missing.png"),
    ]));
    let err = stderr(&run);
    assert_eq!(run.status.code(), Some(2), "{err}");
    for name in ["corrupt.png", "huge.png", "missing.png", "cut.jpg", "table.jpg", "frame.jpg"] {
        assert!(err.contains(name), "{name} must be named: {err}");
    }
    for (stem, w, h) in [("good", 250, 250), ("tiny", 1, 1), ("wide", 40, 7)] {
        let (map, shape) = read_npy_f32(&std::fs::read(out.join(format!("{stem}.map.npy"))).unwrap()).unwrap();
        assert_eq!(shape, [h, w], "{stem}: maps default to the image's size");
        assert!(map.iter().all(|v| v.is_finite() && *v >= 0.0 && *v <= 1.0), "{stem}");
        assert!(out.join(format!("{stem}.overlay.png")).exists());
    }
    for stem in ["corrupt", "huge", "cut", "table", "frame"] {
        assert!(!out.join(format!("{stem}.overlay.png")).exists());
    }
    let csv = std::fs::read_to_string(out.join("scores.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 8, "{csv}");
    assert!(csv.lines().any(|l| l.contains("huge.png") && l.contains("larger than the limit")), "{csv}");
    assert!(csv.lines().any(|l| l.contains("cut.jpg") && l.contains("truncated")), "{csv}");
    assert!(csv.lines().any(|l| l.contains("table.jpg") && l.contains("Huffman table")), "{csv}");
    assert!(csv.lines().any(|l| l.contains("frame.jpg") && l.contains("larger than the limit")), "{csv}");
    assert_no_temp_files(&out);
}

#[test]
fn detect_refuses_a_model_without_text_embeddings() {
    let dir = scratch("detect-no-text");
    let clip = tiny_clip(&dir);
    let model = dir.join("clip-only.safetensors");
    let run = tokenclip(&os(&[&"import", &"--clip", &clip, &"--image-size", &"64", &"--out", &model]));
    assert!(run.status.success(), "{}", stderr(&run));
    let img = shared_data().join("saa-demo/carpet.png");
    let out = dir.join("out");
    let run = tokenclip(&os(&[&"--backend", &"cpu", &"detect", &"--model", &model, &"--out", &out, &img]));
    let err = stderr(&run);
    assert_eq!(run.status.code(), Some(1), "{err}");
    assert!(err.contains("no text embeddings") && err.contains("--prompts"), "{err}");
    assert!(!out.join("scores.csv").exists());
}

#[test]
fn detect_reports_empty_folders_and_unwritable_outputs() {
    let dir = scratch("detect-empty");
    let model = m4_model(&dir);
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let run = tokenclip(&os(&[&"--backend", &"cpu", &"detect", &"--model", &model, &"--out", &dir.join("o"), &empty]));
    let err = stderr(&run);
    assert_eq!(run.status.code(), Some(1), "{err}");
    assert!(err.contains("no input images") && err.contains("empty"), "{err}");

    let blocker = dir.join("a-file");
    std::fs::write(&blocker, b"not a folder").unwrap();
    let img = shared_data().join("saa-demo/carpet.png");
    let run = tokenclip(&os(&[&"--backend", &"cpu", &"detect", &"--model", &model, &"--out", &blocker, &img]));
    let err = stderr(&run);
    assert_eq!(run.status.code(), Some(1), "{err}");
    assert!(err.contains("a-file"), "{err}");
}

/// Prompts for a CLIP of another text width are refused at import, naming the mismatch, and no
/// model file is written.
#[test]
fn import_refuses_prompts_of_another_width() {
    let dir = scratch("import-wrong-prompts");
    let prompts = dir.join("wide.safetensors");
    let ctx = vec![0.5f32; 2 * 12 * 96];
    let bytes: Vec<u8> = ctx.iter().flat_map(|v| v.to_le_bytes()).collect();
    let view =
        |b: &'static [u8]| safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2, 12, 96], b).unwrap();
    let leaked: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    safetensors::serialize_to_file(
        [("prompt.ctx_normal", view(leaked)), ("prompt.ctx_abnormal", view(leaked))],
        None,
        &prompts,
    )
    .unwrap();
    let (model, run) = import_with_prompts(&dir, &prompts, &[]);
    let err = stderr(&run);
    assert!(!run.status.success() && err.contains("96") && err.contains("64") && err.contains("wide"), "{err}");
    assert!(!model.exists());
}

/// `--prompts ensemble` builds a detector from CLIP weights alone; `--vision-only` then leaves
/// the text tower out and detection still works.
#[test]
fn ensemble_vision_only_model_detects() {
    let dir = scratch("ensemble-vision-only");
    let (model, run) = import_with_prompts(&dir, &"ensemble", &["--vision-only", "--class-name", "bottle"]);
    assert!(run.status.success(), "{}", stderr(&run));
    let info = String::from_utf8_lossy(&run.stdout);
    assert!(info.contains("text: none") && info.contains("ensemble: bottle"), "{info}");
    let fx = DetectFixture::load();
    let file = tokenclip::clip::model_file::ModelFile::open(&model).unwrap();
    let got = file.read_f32(tokenclip::clip::model_file::TEXT_NORMAL).unwrap();
    assert_max_abs("ensemble bottle normal", &got, &fx.get("ensemble.bottle.text_normal").0, 1e-5);
    let out = dir.join("out");
    let img = shared_data().join("saa-demo/carpet.png");
    let run = tokenclip(&os(&[&"--backend", &"cpu", &"detect", &"--model", &model, &"--out", &out, &img]));
    assert!(run.status.success(), "{}", stderr(&run));
    assert!(out.join("carpet.overlay.png").exists());
}
