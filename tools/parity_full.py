#!/usr/bin/env python3
"""Full-size CLIP parity, by hand: a random-weight open_clip checkpoint of a real architecture
(from `tools/make_clip_fixtures.py --full ARCH --out-dir DIR`) imported and embedded by the
`tokenclip` binary, compared with open_clip's own embeddings.

    python3 tools/make_clip_fixtures.py --full ViT-B-16 --out-dir /tmp/full-b16
    cargo build --release
    python3 tools/parity_full.py /tmp/full-b16 [--backend cpu] [--dtypes f32,f16]

Prints the relative L2 error of every image and text embedding; exits non-zero when one is above
1e-4 (f32 weights) or 5e-3 (f16 weights), PNG and JPEG inputs alike (both decode exactly as PIL).
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
from safetensors.numpy import load_file
from safetensors import safe_open

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "tokenclip")
TOL = {"f32": 1e-4, "f16": 5e-3}


def rel(a, b):
    return float(np.linalg.norm(a.astype(np.float64) - b) / np.linalg.norm(b.astype(np.float64)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--dtypes", default="f32,f16")
    a = ap.parse_args()
    with safe_open(os.path.join(a.dir, "expected.safetensors"), "np") as f:
        meta = f.metadata()
    exp = load_file(os.path.join(a.dir, "expected.safetensors"))
    images, texts = json.loads(meta["images"]), json.loads(meta["texts"])
    failed = False
    for dtype in a.dtypes.split(","):
        model = os.path.join(a.dir, f"model.{dtype}.safetensors")
        if not os.path.exists(model):
            subprocess.run([BIN, "import", "--clip", os.path.join(a.dir, "openclip.safetensors"), "--dtype", dtype,
                            "--out", model], check=True)
        out = os.path.join(a.dir, f"embeds.{dtype}.{a.backend}.safetensors")
        cmd = [BIN, "--backend", a.backend, "embed", "--model", model, "--out", out]
        for i in images:
            cmd += ["--image", i]
        for t in texts:
            cmd += ["--text", t]
        subprocess.run(cmd, check=True)
        got = load_file(out)
        print(f"{meta['arch']} {dtype} weights, {a.backend} backend (tolerance {TOL[dtype]:.0e}):")
        for kind, names in [("image", images), ("text", texts)]:
            for i, name in enumerate(names):
                e = rel(got[f"{kind}_embeds"][i], exp[f"{kind}_embeds"][i])
                tol = TOL[dtype]
                flag = "ok" if e <= tol else "FAIL"
                failed |= e > tol
                print(f"  {kind} {os.path.basename(name)[:40]:<40} rel L2 {e:.2e}  {flag}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
