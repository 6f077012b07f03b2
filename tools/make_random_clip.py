#!/usr/bin/env python3
"""A random-weight CLIP checkpoint in open_clip's layout, with NumPy only (no PyTorch): for
benchmarks that need a real architecture's shapes and no real weights (the few-shot cost in
BENCHMARKS.md). Writes DIR/open_clip_model.safetensors (f32) and DIR/open_clip_config.json.

Weights: matrices N(0, 0.02²), LayerNorm weights 1 and biases 0, embeddings N(0, 0.02²).

Usage: python3 tools/make_random_clip.py --arch ViT-L-14-336 --out-dir /tmp/rand-l14
"""
import argparse
import json
import pathlib

import numpy as np
from safetensors.numpy import save_file

ARCHS = {
    # embed_dim, vision (image size, patch, width, layers), text (width, layers)
    "ViT-B-16": (512, (224, 16, 768, 12), (512, 12)),
    "ViT-L-14-336": (768, (336, 14, 1024, 24), (768, 12)),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", choices=sorted(ARCHS), default="ViT-L-14-336")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    embed, (size, patch, vw, vl), (tw, tl) = ARCHS[a.arch]
    rng = np.random.default_rng(a.seed)
    t = {}

    def mat(name, *shape):
        t[name] = (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float32)

    def ln(name, w):
        t[f"{name}.weight"] = np.ones(w, np.float32)
        t[f"{name}.bias"] = np.zeros(w, np.float32)

    def blocks(prefix, layers, w):
        for i in range(layers):
            p = f"{prefix}.resblocks.{i}"
            ln(f"{p}.ln_1", w)
            ln(f"{p}.ln_2", w)
            mat(f"{p}.attn.in_proj_weight", 3 * w, w)
            t[f"{p}.attn.in_proj_bias"] = np.zeros(3 * w, np.float32)
            mat(f"{p}.attn.out_proj.weight", w, w)
            t[f"{p}.attn.out_proj.bias"] = np.zeros(w, np.float32)
            mat(f"{p}.mlp.c_fc.weight", 4 * w, w)
            t[f"{p}.mlp.c_fc.bias"] = np.zeros(4 * w, np.float32)
            mat(f"{p}.mlp.c_proj.weight", w, 4 * w)
            t[f"{p}.mlp.c_proj.bias"] = np.zeros(w, np.float32)

    grid = size // patch
    mat("visual.class_embedding", vw)
    mat("visual.positional_embedding", grid * grid + 1, vw)
    mat("visual.conv1.weight", vw, 3, patch, patch)
    ln("visual.ln_pre", vw)
    blocks("visual.transformer", vl, vw)
    ln("visual.ln_post", vw)
    mat("visual.proj", vw, embed)
    mat("token_embedding.weight", 49408, tw)
    mat("positional_embedding", 77, tw)
    blocks("transformer", tl, tw)
    ln("ln_final", tw)
    mat("text_projection", tw, embed)
    t["logit_scale"] = np.array(np.log(100.0), np.float32)
    out = pathlib.Path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file(t, str(out / "open_clip_model.safetensors"))
    cfg = {
        "model_cfg": {
            "embed_dim": embed,
            "vision_cfg": {"image_size": size, "patch_size": patch, "width": vw, "layers": vl},
            "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": tw, "heads": tw // 64, "layers": tl},
            "quick_gelu": True,
        },
        "preprocess_cfg": {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711]},
    }
    (out / "open_clip_config.json").write_text(json.dumps(cfg, indent=2))
    print(f"wrote {out}/open_clip_model.safetensors ({sum(v.size for v in t.values()) / 1e6:.0f} M parameters)")


if __name__ == "__main__":
    main()
