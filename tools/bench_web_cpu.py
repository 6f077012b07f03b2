#!/usr/bin/env python3
"""CPU-in-the-browser anchor: ORT-Web (wasm EP) against tokenclip's wasm CPU backend, one sitting.

Measures, in one headless Chromium (Debian's /usr/bin/chromium through /usr/bin/chromedriver,
W3C WebDriver from the standard library, WebGPU not enabled), on the same machine:

* ONNX Runtime Web (npm `onnxruntime-web`, pinned below) running the image tower of CLIP
  ViT-B/16 at 224 px (open_clip, random weights, seed 0; exported to ONNX opset 17, input
  `pixels` [1,3,224,224] f32, output the pooled embedding [1,512]) on its `wasm` execution
  provider with env.wasm.numThreads = 1, then 2 (each in a fresh page load, the page
  cross-origin isolated so that threads can work; the effective thread count is reported);
* optionally, tokenclip's own JS API (`Detector.load(url, {backend: "cpu", cache: false})`,
  `detect(ImageData 224x224)`) from a wasm package (web/pkg, tools/build_web.sh) and a model.

Each configuration: 2 warm-up runs, then --runs timed runs on one random input; median and
minimum milliseconds, session-create / model-load time, and GFLOP/s against the FLOP count of one
ViT-B/16@224 image-tower pass (2 FLOP per multiply-add: patch embedding, per layer QKV, output
projection, MLP and the two attention products, final projection; norms, softmax, GELU left out).

    python3 tools/bench_web_cpu.py                         # ORT-Web, 1 and 2 threads
    python3 tools/bench_web_cpu.py --runs 20 --tokenclip MODEL.safetensors [--pkg web/pkg]
    python3 tools/bench_web_cpu.py --help

Needs: python3 with torch and open_clip_torch (PyPI; only the first time, to export the model),
`onnx` (PyPI; installed into WORK/pylib if missing), node/npm and the npm registry (first time:
onnxruntime-web is installed into WORK/node_modules), /usr/bin/chromium and /usr/bin/chromedriver.
Everything it makes is cached in WORK (--work, default /tmp/bench-web-cpu); the report goes to
WORK/report.json (--json). Timings are only as quiet as the machine is.
"""

import argparse
import http.server
import inspect
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ORT_WEB = "1.31.1"  # onnxruntime-web, pinned
ONNX_PIP = "onnx==1.23.2"  # only the exporter needs it
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
CHROME_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
WARMUP = 2


def log(msg):
    print(f"[bench_web_cpu] {msg}", flush=True)


def vit_gflop(image=224, patch=16, width=768, layers=12, mlp=3072, out=512):
    """FLOP (2 per multiply-add) of one pass of a CLIP ViT image tower, in GFLOP."""
    grid = (image // patch) ** 2
    tokens = grid + 1  # patches + class token
    patch_embed = 2 * grid * (3 * patch * patch) * width
    matmuls = 2 * tokens * width * (3 * width + width + 2 * mlp)  # QKV, out proj, MLP up + down
    attention = 2 * 2 * tokens * tokens * width  # Q·Kᵀ and P·V over all heads
    return (patch_embed + layers * (matmuls + attention) + 2 * width * out) / 1e9


# ---- the model and the package (cached in WORK) --------------------------------------------


def make_onnx(work):
    path = work / "clip-vit-b-16-visual-224.onnx"
    if path.exists():
        return path
    try:
        import onnx  # noqa: F401  (torch's TorchScript exporter serializes through it)
    except ImportError:
        pylib = work / "pylib"
        if not (pylib / "onnx").exists():
            log(f"pip install {ONNX_PIP} into {pylib}")
            subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(pylib), ONNX_PIP],
                           check=True)
        sys.path.append(str(pylib))  # after site-packages: the installed numpy etc. stay first
    import open_clip
    import torch

    log("exporting open_clip ViT-B-16 (random weights, seed 0) image tower to ONNX")
    torch.manual_seed(0)
    visual = open_clip.create_model("ViT-B-16", pretrained=None).visual.eval()
    x = torch.randn(1, 3, 224, 224)
    kw = {"input_names": ["pixels"], "output_names": ["embedding"], "opset_version": 17}
    params = inspect.signature(torch.onnx.export).parameters
    if "dynamo" in params:
        kw["dynamo"] = False
    if "external_data" in params:
        kw["external_data"] = False
    tmp = path.with_suffix(".tmp")
    # Not under no_grad: with gradients off, nn.MultiheadAttention takes its fused fast path
    # (aten::_native_multi_head_attention), which the TorchScript exporter cannot translate.
    torch.onnx.export(visual, (x,), str(tmp), **kw)
    tmp.rename(path)
    log(f"{path} ({path.stat().st_size / 1e6:.0f} MB)")
    return path


def install_ort(work):
    pkg = work / "node_modules" / "onnxruntime-web"
    try:
        if json.loads((pkg / "package.json").read_text())["version"] == ORT_WEB:
            return pkg / "dist"
    except (OSError, ValueError, KeyError):
        pass
    log(f"npm install onnxruntime-web@{ORT_WEB} into {work}")
    subprocess.run(["npm", "install", "--prefix", str(work), "--no-audit", "--no-fund", f"onnxruntime-web@{ORT_WEB}"],
                   check=True)
    return pkg / "dist"


# ---- the page ------------------------------------------------------------------------------

PAGE_JS = r"""
const stats = (ts) => {
  const s = [...ts].sort((a, b) => a - b), m = s.length >> 1;
  return { median_ms: s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2, min_ms: s[0], times_ms: ts };
};
let seed = 12345;  // a fixed LCG: the same input every time
const rand = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 4294967296);
const describe = (e) => (e && e.kind ? `${e.kind}: ${e.message}` : String(e && e.stack ? e.stack : e));
const page = () => ({ userAgent: navigator.userAgent, crossOriginIsolated: self.crossOriginIsolated,
                      hardwareConcurrency: navigator.hardwareConcurrency });

async function time(f, runs, warmup) {
  for (let i = 0; i < warmup; i++) await f();
  const ts = [];
  for (let i = 0; i < runs; i++) { const t = performance.now(); await f(); ts.push(performance.now() - t); }
  return stats(ts);
}

export async function ort({ threads, runs, warmup }) {
  let workers = 0;  // pthread workers the wasm module starts: numThreads - 1 when threads work
  const W = globalThis.Worker;
  globalThis.Worker = class extends W { constructor(...a) { super(...a); workers++; } };
  const ort = await import("/ort/ort.wasm.min.mjs");
  ort.env.wasm.numThreads = threads;
  ort.env.wasm.simd = true;
  ort.env.wasm.proxy = false;
  let t = performance.now();
  const bytes = new Uint8Array(await (await fetch("/model.onnx")).arrayBuffer());
  const fetch_ms = performance.now() - t;
  t = performance.now();
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
  const session_create_ms = performance.now() - t;
  const x = new Float32Array(3 * 224 * 224).map(() => rand() * 4 - 2);
  const feeds = { [session.inputNames[0]]: new ort.Tensor("float32", x, [1, 3, 224, 224]) };
  let out;
  const s = await time(async () => { out = await session.run(feeds); }, runs, warmup);
  return { ...page(), ...s, ort_version: ort.env.versions?.web ?? null, numThreads: threads,
           numThreads_effective: ort.env.wasm.numThreads, workers, simd: ort.env.wasm.simd, fetch_ms,
           session_create_ms, model_bytes: bytes.length, output_dims: out[session.outputNames[0]].dims };
}

export async function tokenclip({ runs, warmup }) {
  const r = page();
  try {
    let t = performance.now();
    const mod = await import("/pkg/tokenclip.js");
    await mod.default();
    r.init_ms = performance.now() - t;
    t = performance.now();
    const d = await mod.Detector.load(location.origin + "/tokenclip.safetensors", { backend: "cpu", cache: false });
    r.load_ms = performance.now() - t;
    Object.assign(r, { backend: d.backend, modelName: d.modelName, inputSize: d.inputSize, adapter: d.adapter });
    const img = new ImageData(224, 224);
    for (let i = 0; i < img.data.length; i++) img.data[i] = (i & 3) === 3 ? 255 : Math.floor(rand() * 256);
    Object.assign(r, await time(() => d.detect(img), runs, warmup));
    r.wasm_memory_mib = mod.wasmMemoryBytes() / 1048576;
  } catch (e) {
    r.error = describe(e);
  }
  return r;
}
"""


def serve(work, dist, onnx, pkg, tc_model):
    www = work / "www"
    www.mkdir(exist_ok=True)
    (www / "index.html").write_text("<!doctype html><meta charset=utf-8><title>bench_web_cpu</title>\n")
    (www / "bench.mjs").write_text(PAGE_JS)
    dirs = {"/ort/": dist, "/pkg/": pkg, "/": www}
    files = {"/model.onnx": onnx, "/tokenclip.safetensors": tc_model}

    class Handler(http.server.SimpleHTTPRequestHandler):
        extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, ".mjs": "text/javascript",
                          ".js": "text/javascript", ".wasm": "application/wasm",
                          ".onnx": "application/octet-stream", ".safetensors": "application/octet-stream"}

        def translate_path(self, path):
            path = urllib.request.url2pathname(path.split("?", 1)[0].split("#", 1)[0])
            if path in files:
                return str(files[path] or "/nonexistent")
            for prefix, root in dirs.items():
                if path.startswith(prefix) and root is not None:
                    rel = Path(path[len(prefix):])
                    return str(root / rel) if ".." not in rel.parts else "/nonexistent"
            return "/nonexistent"

        def end_headers(self):
            for k, v in [("Cross-Origin-Opener-Policy", "same-origin"), ("Cross-Origin-Embedder-Policy", "require-corp"),
                         ("Cross-Origin-Resource-Policy", "same-origin"), ("Cache-Control", "no-store")]:
                self.send_header(k, v)
            super().end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


# ---- WebDriver -----------------------------------------------------------------------------


class Chromium:
    """A headless Chromium session driven over chromedriver's W3C WebDriver HTTP endpoint."""

    def __init__(self):
        self.profile = tempfile.TemporaryDirectory(prefix="bench-web-cpu-chromium-")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.driver = subprocess.Popen([CHROMEDRIVER, f"--port={port}"], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(self.url + "/status", timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("chromedriver did not start") from None
                time.sleep(0.1)
        opts = {"binary": CHROMIUM, "args": CHROME_ARGS + [f"--user-data-dir={self.profile.name}"]}
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": opts}}}
        v = self.call("POST", "/session", caps)
        self.sid, self.version = v["sessionId"], v["capabilities"].get("browserVersion")
        self.call("POST", f"/session/{self.sid}/timeouts", {"script": 3_600_000, "pageLoad": 120_000})

    def call(self, method, path, body=None):
        req = urllib.request.Request(self.url + path, method=method, data=None if body is None else json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=3700) as r:
                return json.loads(r.read() or b"{}").get("value")
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"WebDriver {method} {path}: {e.read().decode(errors='replace')[:1500]}") from None

    def bench(self, page_url, fn, args):
        """Loads the page afresh and awaits bench.mjs's FN(ARGS)."""
        self.call("POST", f"/session/{self.sid}/url", {"url": page_url})
        script = ("const [fn, args, done] = arguments;"
                  "import('/bench.mjs').then(m => m[fn](args))"
                  ".then(done, e => done({error: String(e && e.stack ? e.stack : e)}));")
        return self.call("POST", f"/session/{self.sid}/execute/async", {"script": script, "args": [fn, args]})

    def close(self):
        try:
            self.call("DELETE", f"/session/{self.sid}")
        except Exception:
            pass
        self.driver.terminate()
        try:
            self.driver.wait(10)
        except subprocess.TimeoutExpired:
            self.driver.kill()
        self.profile.cleanup()


# ---- main ----------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench-web-cpu"), help="cache and scratch dir")
    ap.add_argument("--runs", type=int, default=10, help="timed runs per configuration (after 2 warm-ups)")
    ap.add_argument("--threads", default="1,2", help="ORT-Web numThreads values, comma-separated")
    ap.add_argument("--tokenclip", type=Path, help="a tokenclip detection model (.safetensors) to time too")
    ap.add_argument("--pkg", type=Path, default=Path("/work/main/web/pkg"), help="tokenclip's wasm package dir")
    ap.add_argument("--json", type=Path, help="report path (default WORK/report.json)")
    a = ap.parse_args()
    work = a.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    onnx, dist = make_onnx(work), install_ort(work)
    tc_model = a.tokenclip.resolve() if a.tokenclip else None
    if tc_model and not tc_model.is_file():
        sys.exit(f"bench_web_cpu: no such model file: {tc_model}")
    if tc_model and not (a.pkg / "tokenclip.js").is_file():
        log(f"warning: {a.pkg / 'tokenclip.js'} does not exist (tools/build_web.sh makes it); the tokenclip run will fail")
    gflop = vit_gflop()
    log(f"one CLIP ViT-B/16@224 image-tower pass = {gflop:.2f} GFLOP (2 FLOP per multiply-add, 197 tokens, "
        "width 768, MLP 3072, 12 layers: patch embed + QKV/out proj/MLP + attention products + final proj)")
    server, base = serve(work, dist, onnx, a.pkg.resolve() if tc_model else None, tc_model)
    browser = Chromium()
    results = []
    try:
        for n in [int(t) for t in a.threads.split(",")]:
            r = browser.bench(base + "/index.html", "ort", {"threads": n, "runs": a.runs, "warmup": WARMUP})
            r.update(config=f"ort-web wasm numThreads={n}", runs=a.runs)
            results.append(r)
        if tc_model:
            r = browser.bench(base + "/index.html", "tokenclip", {"runs": a.runs, "warmup": WARMUP})
            r.update(config="tokenclip wasm cpu", runs=a.runs, model=str(tc_model), pkg=str(a.pkg.resolve()))
            results.append(r)
    finally:
        browser.close()
        server.shutdown()
    for r in results:
        if "error" in r:
            print(f"{r['config']}: FAILED: {r['error']}")
            continue
        same_work = r["config"].startswith("ort") or (r.get("modelName") == "ViT-B/16" and r.get("inputSize") == 224)
        r["gflop"] = gflop if same_work else None
        r["gflop_per_s"] = gflop / (r["median_ms"] / 1e3) if same_work else None
        rate = f"{r['gflop_per_s']:.1f} GFLOP/s at the median" if same_work else "GFLOP/s n/a (not ViT-B/16@224)"
        if r["config"].startswith("ort"):
            extra = (f"effective numThreads {r['numThreads_effective']}, {r['workers']} pthread worker(s), "
                     f"crossOriginIsolated {r['crossOriginIsolated']}, session create {r['session_create_ms']:.0f} ms")
        else:
            extra = (f"backend {r['backend']!r}, {r['modelName']} @ {r['inputSize']} px, "
                     f"crossOriginIsolated {r['crossOriginIsolated']}, load {r['load_ms']:.0f} ms, "
                     f"wasm memory {r.get('wasm_memory_mib', float('nan')):.0f} MiB")
        print(f"{r['config']}: median {r['median_ms']:.1f} ms, min {r['min_ms']:.1f} ms over {r['runs']} runs; "
              f"{rate}; {extra}")
    report = {"gflop_per_pass": gflop, "gflop_note": "CLIP ViT-B/16 image tower at 224 px, 2 FLOP per multiply-add, "
              "matmuls and attention products only", "chromium": browser.version,
              "userAgent": next((r["userAgent"] for r in results if "userAgent" in r), None),
              "ort_version": ORT_WEB, "warmup_runs": WARMUP, "cpus": os.cpu_count(), "loadavg": os.getloadavg(),
              "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "results": results}
    out = a.json or work / "report.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    log(f"report: {out}")
    return 1 if any("error" in r for r in results if r["config"].startswith("ort")) else 0


if __name__ == "__main__":
    sys.exit(main())
