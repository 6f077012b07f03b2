#!/usr/bin/env python3
"""Autograd fixture for the text encoder's backward (src/train/text, METHOD.md A3, B1).

Writes tests/fixtures/train_text_grads.safetensors from the committed tiny CLIP
(tests/fixtures/detect_tiny/clip.safetensors.gz: text W=64, 4 layers, 1 head, D=64) and prompts
(tests/fixtures/detect_tiny/prompts_m4.safetensors: M=4, 12 context tokens, 3 deep layers x 4),
through tools/tokenclip_reference.py's `encode_text_prompts`, in float64:
  text_normal, text_abnormal     [4, 64]      the normalised embeddings
  cot_normal, cot_abnormal       [4, 64]      a fixed random cotangent c (seed below)
  grad.ctx_normal, grad.ctx_abnormal [4, 12, 64], grad.deep [3, 4, 64]
                                              d(sum(c_n * t_n) + sum(c_a * t_a)) / d prompts
All tensors are float64. Script, versions and seed are in the metadata.

Command: python3 tools/make_train_text_fixtures.py
"""
import gzip
import json
import os
import sys

import open_clip
import safetensors.torch
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokenclip_reference as ref  # noqa: E402

SEED = 20261207
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures")
OUT = os.path.join(FIX, "train_text_grads.safetensors")


def tiny_clip():
    """The detection fixtures' tiny CLIP (same configuration as tools/make_detect_fixtures.py)."""
    model = open_clip.model.CLIP(
        embed_dim=64,
        vision_cfg=dict(image_size=32, layers=4, width=128, patch_size=8, head_width=64),
        text_cfg=dict(context_length=77, vocab_size=49408, width=64, heads=1, layers=4),
        quick_gelu=True,
    ).eval()
    with gzip.open(os.path.join(FIX, "detect_tiny", "clip.safetensors.gz"), "rb") as f:
        state = safetensors.torch.load(f.read())
    model.load_state_dict({k: v.double() for k, v in state.items()}, strict=True)
    return model.double()


def save_sorted(tensors, path, metadata):
    """safetensors with the metadata keys sorted, so the bytes do not change from run to run."""
    raw = safetensors.torch.save(tensors, metadata=metadata)
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    assert len(text) <= n
    with open(path, "wb") as f:
        f.write(raw[:8] + text + b" " * (n - len(text)) + raw[8 + n:])


def main():
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    model = tiny_clip()
    for p in model.parameters():
        p.requires_grad_(False)
    prompts = safetensors.torch.load_file(os.path.join(FIX, "detect_tiny", "prompts_m4.safetensors"))
    leaves = {k: prompts[f"prompt.{k}"].double().requires_grad_(True) for k in ["ctx_normal", "ctx_abnormal", "deep"]}
    tn, ta = ref.encode_text_prompts(model, leaves["ctx_normal"], leaves["ctx_abnormal"], leaves["deep"])
    cn = torch.randn(tn.shape, generator=gen, dtype=torch.float64)
    ca = torch.randn(ta.shape, generator=gen, dtype=torch.float64)
    ((cn * tn).sum() + (ca * ta).sum()).backward()
    out = {"text_normal": tn.detach(), "text_abnormal": ta.detach(), "cot_normal": cn, "cot_abnormal": ca}
    out.update({f"grad.{k}": v.grad for k, v in leaves.items()})
    meta = {
        "script": "tools/make_train_text_fixtures.py",
        "command": "python3 tools/make_train_text_fixtures.py",
        "seed": str(SEED),
        "versions": json.dumps({"torch": torch.__version__, "open_clip": open_clip.__version__}),
    }
    save_sorted({k: v.contiguous() for k, v in out.items()}, OUT, meta)
    for k, v in out.items():
        print(f"{k}: {tuple(v.shape)} max |x| {float(v.abs().max()):.4g}")


if __name__ == "__main__":
    main()
