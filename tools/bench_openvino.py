#!/usr/bin/env python3
"""Native CPU anchor: OpenVINO against tokenclip's CPU backend on the same image tower, one sitting.

OpenVINO (PyPI `openvino`) runs the ONNX export of open_clip's image tower (random weights, seed
0; torch's TorchScript exporter, opset 17, input `pixels` [1,3,S,S] f32) on the CPU plugin with
INFERENCE_NUM_THREADS = --threads and PERFORMANCE_HINT = LATENCY, twice: with
INFERENCE_PRECISION_HINT = f32 and with the plugin's default precision (bf16 on CPUs with
AVX512-BF16 or AMX). The script prints, per run, which kernels OpenVINO's runtime graph uses for
its FullyConnected/MatMul/Convolution nodes (e.g. `brgemm_avx512_bf16`).

tokenclip runs `tokenclip --backend cpu --precision P bench --model M --image-size S` (the image
tower alone, `encode_image`) with --precision f32 and bf16, M an import of the same architecture
(its own random weights: the cost does not depend on the values). Configurations alternate over
--rounds rounds; each reports its median; GFLOP/s count the tower's FLOP (2 per multiply-add).

    python3 tools/bench_openvino.py --arch ViT-B-16 --size 224 --tokenclip B16_224.safetensors
    python3 tools/bench_openvino.py --arch ViT-L-14-336 --size 518 --tokenclip L14_518.safetensors

Needs: torch, open_clip_torch, onnx and openvino from PyPI (only here, never in CI); the ONNX
file is cached in --work (default /tmp/bench-openvino).
"""

import argparse
import inspect
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARCHS = {  # patch, width, layers, mlp, output dim
    "ViT-B-16": (16, 768, 12, 3072, 512),
    "ViT-L-14-336": (14, 1024, 24, 4096, 768),
    "ViT-L-14": (14, 1024, 24, 4096, 768),
}


def log(msg):
    print(f"[bench_openvino] {msg}", flush=True)


def tower_gflop(arch, size):
    patch, width, layers, mlp, out = ARCHS[arch]
    grid = (size // patch) ** 2
    t = grid + 1
    per_layer = t * width * 3 * width + t * width * width + 2 * t * width * mlp + 2 * t * t * width
    return 2 * (grid * 3 * patch * patch * width + layers * per_layer + width * out) / 1e9


def make_onnx(work, arch, size):
    path = work / f"{arch}-{size}.onnx"
    if path.exists():
        return path
    try:
        import onnx  # noqa: F401  (the TorchScript exporter serializes through it)
    except ImportError:
        pylib = work / "pylib"
        if not (pylib / "onnx").exists():
            log(f"pip install onnx==1.23.2 into {pylib}")
            subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(pylib), "onnx==1.23.2"],
                           check=True)
        sys.path.append(str(pylib))
    import open_clip
    import torch

    log(f"exporting open_clip {arch} at {size} px (random weights, seed 0) to ONNX")
    torch.manual_seed(0)
    visual = open_clip.create_model(arch, pretrained=None, force_image_size=size).visual.eval()
    kw = {"input_names": ["pixels"], "output_names": ["embedding"], "opset_version": 17}
    params = inspect.signature(torch.onnx.export).parameters
    if "dynamo" in params:
        kw["dynamo"] = False
    tmp = path.with_suffix(".tmp")
    # Not under no_grad: the fused fast path of nn.MultiheadAttention does not export.
    torch.onnx.export(visual, (torch.randn(1, 3, size, size),), str(tmp), **kw)
    tmp.rename(path)
    return path


def openvino_runner(onnx, threads, hint, reps):
    import numpy as np
    import openvino as ov

    core = ov.Core()
    cfg = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
    if hint:
        cfg["INFERENCE_PRECISION_HINT"] = hint
    compiled = core.compile_model(core.read_model(str(onnx)), "CPU", cfg)
    req = compiled.create_infer_request()
    shape = compiled.input(0).get_partial_shape().to_shape()
    x = np.random.default_rng(0).standard_normal(tuple(shape), dtype=np.float32)
    kernels = {}
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        kind = info["layerType"].astype(str) if "layerType" in info else op.get_type_name()
        if kind in ("FullyConnected", "MatMul", "Convolution"):
            key = f"{kind}:{info['primitiveType'].astype(str)}"
            kernels[key] = kernels.get(key, 0) + 1
    precision = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
    for _ in range(2):
        req.infer({0: x})

    def run():
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            req.infer({0: x})
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    return run, {"precision": precision, "kernels": kernels}


def tokenclip_run(binary, model, size, precision, reps, threads, extra_env=None):
    env = {"RAYON_NUM_THREADS": str(threads), "PATH": "/usr/bin:/bin", **(extra_env or {})}
    cmd = [str(binary), "--backend", "cpu", "--precision", precision, "bench", "--model", str(model),
           "--image-size", str(size), "--reps", str(reps)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    m = re.search(r"median of \d+ ([0-9.]+) s", out)
    if not m:
        sys.exit(f"cannot read the median from: {out}")
    return float(m.group(1))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="ViT-B-16", choices=sorted(ARCHS))
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--tokenclip", type=Path, help="a tokenclip model of the same architecture")
    ap.add_argument("--binary", type=Path, default=ROOT / "target/release/tokenclip")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5, help="timed passes per configuration and round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("/tmp/bench-openvino"))
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    onnx = make_onnx(a.work, a.arch, a.size)
    gflop = tower_gflop(a.arch, a.size)
    import openvino

    log(f"OpenVINO {openvino.__version__}, {a.arch} at {a.size} px: {gflop:.2f} GFLOP per pass, {a.threads} threads")
    configs = {}
    for hint, name in [("f32", "openvino f32"), (None, "openvino default")]:
        run, info = openvino_runner(onnx, a.threads, hint, a.reps)
        configs[name] = (run, info)
        log(f"{name}: precision {info['precision']}, kernels {info['kernels']}")
    if a.tokenclip:
        for p in ["f32", "bf16"]:
            configs[f"tokenclip {p}"] = (
                lambda p=p: tokenclip_run(a.binary, a.tokenclip, a.size, p, a.reps, a.threads), {})
    results = {name: [] for name in configs}
    for r in range(a.rounds):
        for name, (run, _) in configs.items():
            results[name].append(run())
            log(f"round {r + 1}: {name} {results[name][-1] * 1000:.1f} ms")
    report = {"arch": a.arch, "size": a.size, "gflop": gflop, "threads": a.threads, "configs": {}}
    base = min(results["openvino f32"])
    print(f"\n| {a.arch} @ {a.size} px, {a.threads} threads | ms (best round's median) | GFLOP/s | vs OpenVINO f32 |")
    print("|---|---|---|---|")
    for name, times in results.items():
        best = min(times)
        report["configs"][name] = {"seconds": times, **configs[name][1]}
        print(f"| {name} | {best * 1000:.1f} | {gflop / best:.0f} | {best / base:.2f}× |")
    out = a.json or a.work / f"report-{a.arch}-{a.size}.json"
    out.write_text(json.dumps(report, indent=2))
    log(f"report in {out}")


if __name__ == "__main__":
    main()
