//! Running the `tokenclip` binary in tests: a tiny detection model made by `import`, seeded
//! PNG images, and the checks every end-to-end test repeats.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::clip::fixture_path;
use super::detect::tiny_clip;

/// The binary with `args` and extra environment variables, run to completion.
pub fn run(args: &[&dyn AsRef<std::ffi::OsStr>], env: &[(&str, &str)]) -> Output {
    command(args, env).output().unwrap()
}

/// The binary with `args` and `env`, not yet started (XDG_RUNTIME_DIR set to quiet Mesa).
pub fn command(args: &[&dyn AsRef<std::ffi::OsStr>], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tokenclip"));
    c.args(args.iter().map(|a| a.as_ref())).env("XDG_RUNTIME_DIR", std::env::temp_dir());
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// Standard error as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The tiny CLIP at 64 px with the M = 4 fixture prompts, imported into `dir/model.safetensors`.
pub fn tiny_model(dir: &Path) -> PathBuf {
    tiny_model_with(dir, "model", &["--dpam-start", "1", "--feature-layers", "4"])
}

/// The tiny CLIP at 64 px with the M = 4 fixture prompts and `import`'s `extra` arguments,
/// imported into `dir/NAME.safetensors`.
pub fn tiny_model_with(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let out = dir.join(format!("{name}.safetensors"));
    let clip = tiny_clip(dir);
    let prompts = fixture_path("detect_tiny/prompts_m4.safetensors");
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> =
        vec![&"import", &"--clip", &clip, &"--prompts", &prompts, &"--image-size", &"64"];
    for e in extra {
        args.push(e);
    }
    args.extend([&"--out" as &dyn AsRef<std::ffi::OsStr>, &out]);
    let o = run(&args, &[]);
    assert!(o.status.success(), "import failed: {}", stderr(&o));
    out
}

/// `n` seeded RGB PNGs of 40–80 px (a texture with a bright square on every other one) in `dir`.
pub fn images(dir: &Path, n: usize) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir).unwrap();
    (0..n)
        .map(|i| {
            let (w, h) = (40 + (i * 7) as u32 % 41, 48 + (i * 13) as u32 % 33);
            let img = image::RgbImage::from_fn(w, h, |x, y| {
                let v = ((x * 31 + y * 17 + i as u32 * 101) % 97) as u8;
                let spot = i % 2 == 1 && (10..20).contains(&x) && (10..20).contains(&y);
                if spot {
                    image::Rgb([250, 240, 30])
                } else {
                    image::Rgb([60 + v, 80 + v / 2, 90 + v / 3])
                }
            });
            let p = dir.join(format!("img{i:04}.png"));
            img.save(&p).unwrap();
            p
        })
        .collect()
}

/// Every file under `dir`, sorted.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Panics if a temporary or partial file is left anywhere under `dir`. (Lock files under a
/// cache's `.locks/` stay, as huggingface_hub leaves them: they hold no data.)
pub fn assert_no_temp_files(dir: &Path) {
    for p in walk(dir) {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !name.contains(".tmp") && !name.ends_with(".partial") && !name.ends_with(".incomplete"),
            "temporary file left behind: {}",
            p.display()
        );
    }
}
