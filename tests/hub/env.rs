//! One test's world: a fake hub + CDN + GitHub serving the tiny fixtures, a registry file naming
//! them, fresh caches, and `tokenclip` run with an environment pointing at all of it (and none
//! of the machine's own proxy, token or cache settings).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use crate::common::clip::{fixture_path, gunzip};
use crate::common::fake_hub::{git_blob, FakeHub, Server};

/// The commit the fake hub publishes the tiny CLIP at.
pub const CLIP_COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
/// The commit of the fake GitHub repository.
pub const PTH_COMMIT: &str = "89abcdef0123456789abcdef0123456789abcdef";

/// Servers, files, caches and the registry of one test.
pub struct HubEnv {
    /// Hub and CDN.
    pub hub: FakeHub,
    /// GitHub raw (also serves plain URLs under `/files/`).
    pub gh: Server,
    /// The tiny CLIP as a local file, and its bytes and sha256.
    pub clip_file: PathBuf,
    /// Its bytes.
    pub clip_bytes: Arc<Vec<u8>>,
    /// Its sha256.
    pub clip_sha: String,
    /// The AnomalyCLIP-layout prompts as a local file.
    pub pth_file: PathBuf,
    /// `HF_HOME`.
    pub hf_home: PathBuf,
    /// `TOKENCLIP_CACHE`.
    pub cache: PathBuf,
    /// The registry file.
    pub registry: PathBuf,
}

impl HubEnv {
    /// Starts the servers and writes the registry (`tiny`, `tiny-unpinned`, `tiny-ensemble`,
    /// `tiny-bad-sha`, `tiny-bad-blob`, `missing`, `html`).
    pub fn new(dir: &Path) -> HubEnv {
        let hub = FakeHub::start();
        let gh = Server::start();
        let clip_file = gunzip("detect_tiny/clip.safetensors.gz", dir);
        let clip_bytes = Arc::new(std::fs::read(&clip_file).unwrap());
        let pth_file = fixture_path("detect_tiny/anomalyclip_m1.pth");
        let pth = Arc::new(std::fs::read(&pth_file).unwrap());
        let clip_sha = hub.publish("test/tiny-clip", CLIP_COMMIT, "open_clip_model.safetensors", clip_bytes.clone());
        gh.file(&format!("/test/anomalyclip/{PTH_COMMIT}/checkpoints/m1/epoch_15.pth"), pth.clone());
        gh.file("/files/model.safetensors", clip_bytes.clone());
        gh.html("/files/login.safetensors", "<!DOCTYPE html><html><body>Sign in</body></html>");
        let (n, blob) = (pth.len(), git_blob(&pth));
        let clip = |extra: &str| {
            format!(
                "clip = {{ hub = \"test/tiny-clip\", revision = \"{CLIP_COMMIT}\", file = \"open_clip_model.safetensors\"{extra} }}"
            )
        };
        let pinned = clip(&format!(", size = {}, sha256 = \"{clip_sha}\"", clip_bytes.len()));
        let prompts = |b: &str| {
            format!(
                "prompts = {{ github = \"test/anomalyclip\", commit = \"{PTH_COMMIT}\", path = \"checkpoints/m1/epoch_15.pth\", size = {n}, git_blob = \"{b}\" }}"
            )
        };
        let import = "import = { image_size = 64, dpam_start = 1, feature_layers = [4], activation = \"quick_gelu\" }";
        let wrong = "0".repeat(64);
        let registry = format!(
            "[model.tiny]\ndescription = \"tiny\"\n{pinned}\n{}\n{import}\n\n\
             [model.tiny-unpinned]\ndescription = \"tiny, hash from the hub\"\n{}\n{}\n{import}\n\n\
             [model.tiny-ensemble]\ndescription = \"tiny ensemble\"\n{pinned}\nensemble = \"carpet\"\n{import}\n\n\
             [model.tiny-bad-sha]\ndescription = \"pins another sha256\"\n{}\n{}\n{import}\n\n\
             [model.tiny-bad-blob]\ndescription = \"pins another git blob\"\n{pinned}\n{}\n{import}\n\n\
             [model.missing]\ndescription = \"a file the hub does not have\"\n\
             clip = {{ hub = \"test/tiny-clip\", revision = \"{CLIP_COMMIT}\", file = \"nope.safetensors\" }}\nensemble = \"x\"\n\n\
             [model.html]\ndescription = \"a URL that serves a login page\"\n\
             clip = {{ url = \"{}/files/login.safetensors\", sha256 = \"{wrong}\" }}\nensemble = \"x\"\n",
            prompts(&blob),
            clip(""),
            prompts(&blob),
            clip(&format!(", sha256 = \"{wrong}\"")),
            prompts(&blob),
            prompts(&"1".repeat(40)),
            gh.url,
        );
        let registry_path = dir.join("registry.toml");
        std::fs::write(&registry_path, registry).unwrap();
        HubEnv {
            hub,
            gh,
            clip_file,
            clip_bytes,
            clip_sha,
            pth_file,
            hf_home: dir.join("hf-home"),
            cache: dir.join("tokenclip-cache"),
            registry: registry_path,
        }
    }

    /// The command with this world's environment (and nothing of the machine's).
    pub fn command(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tokenclip"));
        for v in [
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "NO_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
            "no_proxy",
            "HF_TOKEN",
            "HF_HUB_OFFLINE",
            "HF_HUB_CACHE",
            "HUGGINGFACE_HUB_CACHE",
            "TOKENCLIP_REGISTRY",
            "XDG_CACHE_HOME",
        ] {
            c.env_remove(v);
        }
        c.env("HF_HOME", &self.hf_home)
            .env("TOKENCLIP_CACHE", &self.cache)
            .env("HF_ENDPOINT", &self.hub.hub.url)
            .env("TOKENCLIP_GITHUB_ENDPOINT", &self.gh.url)
            .env("TOKENCLIP_REGISTRY", &self.registry)
            .env("XDG_RUNTIME_DIR", std::env::temp_dir())
            .args(["--backend", "cpu"]);
        c
    }

    /// Runs `tokenclip ARGS`.
    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    /// Runs `tokenclip ARGS` with extra environment variables.
    pub fn run_with(&self, args: &[&str], vars: &[(&str, &str)]) -> Output {
        let mut c = self.command();
        for (k, v) in vars {
            c.env(k, v);
        }
        c.args(args).output().unwrap()
    }

    /// `tokenclip import` of the tiny CLIP and prompts with the settings of the registry's `tiny`.
    pub fn import_tiny(&self, out: &Path) {
        let run = self.run(&[
            "import",
            "--clip",
            self.clip_file.to_str().unwrap(),
            "--prompts",
            self.pth_file.to_str().unwrap(),
            "--image-size",
            "64",
            "--dpam-start",
            "1",
            "--feature-layers",
            "4",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(run.status.success(), "{}", stderr(&run));
    }

    /// The converted model file of a name (the only one in the cache's `models/`).
    pub fn converted(&self, name: &str) -> PathBuf {
        let dir = self.cache.join("models");
        let found: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(&format!("{name}-")))
            .collect();
        assert_eq!(found.len(), 1, "converted files of {name}: {found:?}");
        found[0].clone()
    }

    /// Requests all servers have seen.
    pub fn requests(&self) -> usize {
        self.hub.hub.seen().len() + self.hub.cdn.seen().len() + self.gh.seen().len()
    }

    /// Forgets the requests seen.
    pub fn clear_seen(&self) {
        self.hub.hub.clear_seen();
        self.hub.cdn.clear_seen();
        self.gh.clear_seen();
    }
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every file under `dir` (recursively).
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() && !p.is_symlink() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// No partial download, validator or temporary file is left under `dir`.
pub fn assert_no_partials(dir: &Path) {
    let bad: Vec<PathBuf> = files(dir)
        .into_iter()
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.ends_with(".incomplete") || n.ends_with(".validator") || n.contains(".tmp-") || n.contains(".link-")
        })
        .collect();
    assert!(bad.is_empty(), "left behind: {bad:?}");
}
