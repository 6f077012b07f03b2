#!/usr/bin/env python3
"""Full-size detection parity, by hand: random-weight ViT-L/14@336 with random M = 4 prompts
(`tools/make_detect_fixtures.py --full --out-dir DIR`), imported and run by the `tokenclip`
binary at 518 px, compared with the PyTorch reference's maps and image scores.

    python3 tools/make_detect_fixtures.py --full --out-dir /tmp/detect-l14
    cargo build --release
    target/release/tokenclip import --clip /tmp/detect-l14/openclip.safetensors \\
        --prompts /tmp/detect-l14/prompts.safetensors --out /tmp/detect-l14/model.f32.safetensors
    python3 tools/parity_detect_full.py /tmp/detect-l14 [--backend cpu] [--model model.f32.safetensors]

Checks (issue targets): max |map difference| <= 1e-3 and |score difference| <= 1e-4 for every
input: our PNG and JPEG decoders and the resize read images exactly as PIL does.
Also compares the stored text embeddings with the reference's.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np
from safetensors import safe_open

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "tokenclip")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--backend", default="cpu")
    ap.add_argument("--model", default="model.f32.safetensors")
    a = ap.parse_args()
    exp = safe_open(os.path.join(a.dir, "expected.safetensors"), "np")
    images = json.loads(exp.metadata()["images"])
    model = os.path.join(a.dir, a.model)
    out = os.path.join(a.dir, f"out-{a.backend}")
    cmd = [BIN, "--backend", a.backend, "detect", "--model", model, "--out", out, "--save-maps",
           "--map-size", "model", *images]
    subprocess.run(cmd, check=True)
    model_file = safe_open(model, "np")
    ok = True
    for name in ["text_normal", "text_abnormal"]:
        d = np.abs(model_file.get_tensor("text_embeddings." + name.split("_")[1]) - exp.get_tensor(name)).max()
        print(f"{name}: max abs difference {d:.2e}")
        ok &= d <= 1e-5
    scores = {os.path.basename(r["path"]): r for r in json.load(open(os.path.join(out, "scores.json")))["images"]}
    for i, path in enumerate(images):
        stem = os.path.splitext(os.path.basename(path))[0]
        got = np.load(os.path.join(out, stem + ".map.npy"))
        dmap = float(np.abs(got.astype(np.float64) - exp.get_tensor(f"{i}.map")).max())
        dscore = abs(scores[os.path.basename(path)]["score"] - float(exp.get_tensor(f"{i}.score")[0]))
        good = dmap <= 1e-3 and dscore <= 1e-4
        print(f"{os.path.basename(path)}: max |map diff| {dmap:.2e}, |score diff| {dscore:.2e} ({'ok' if good else 'FAIL'})")
        ok &= good
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
