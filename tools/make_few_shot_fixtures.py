#!/usr/bin/env python3
"""Few-shot scoring fixture, computed in float64 with NumPy (docs/FEW_SHOT.md):

    score_i = mean over layers l of (1 - max_j cos(p_{l,i}, m_{l,j}))

for a test image's patches p_l [N, D] and the memory m_l [k·N, D] of k reference images' patches
at the same layer (APRIL-GAN's and WinCLIP+'s nearest-neighbour score, averaged over layers as
the issue asks). Writes tests/fixtures/few_shot_reference.safetensors:

    reference.{l}  [k, N, D]  the reference images' raw (unnormalised) patches
    test.{l}       [N, D]     a test image's raw patches
    scores         [N]        the expected score per patch (f32 of the float64 result)

Usage: python3 tools/make_few_shot_fixtures.py  (needs numpy and safetensors from PyPI)
"""
import json
import pathlib

import numpy as np
from safetensors.numpy import save_file

LAYERS, K, N, D = 2, 3, 50, 24
rng = np.random.default_rng(17)


def unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


tensors, scores = {}, np.zeros(N)
for layer in range(LAYERS):
    ref = rng.normal(size=(K, N, D)) * rng.uniform(0.5, 3.0, size=(K, N, 1))
    test = rng.normal(size=(N, D)) * 2.0
    # Half the test patches are near-copies of reference patches: similarities near 1.
    near = rng.integers(0, K * N, size=N // 2)
    test[: N // 2] = ref.reshape(K * N, D)[near] * 1.7 + rng.normal(size=(N // 2, D)) * 0.05
    ref, test = ref.astype(np.float32), test.astype(np.float32)
    cos = unit(test.astype(np.float64)) @ unit(ref.reshape(K * N, D).astype(np.float64)).T
    scores += (1.0 - cos.max(axis=1)) / LAYERS
    tensors[f"reference.{layer}"] = ref
    tensors[f"test.{layer}"] = test
tensors["scores"] = scores.astype(np.float32)
out = pathlib.Path(__file__).resolve().parent.parent / "tests/fixtures/few_shot_reference.safetensors"
meta = {"layers": str(LAYERS), "k": str(K), "n": str(N), "d": str(D),
        "made_by": "tools/make_few_shot_fixtures.py (NumPy float64)",
        "texts": json.dumps([]), "tokens": json.dumps([]), "images": json.dumps([])}
save_file(tensors, str(out), metadata=meta)
print(f"wrote {out} ({out.stat().st_size} bytes); scores in [{scores.min():.4f}, {scores.max():.4f}]")
