"""Generate reference fixtures for tokenclip's tensor ops.

Writes tests/fixtures/ops_reference.safetensors: small float32 inputs and the
expected outputs computed by PyTorch / SciPy in float64 (from the float32
inputs cast to float64), stored as F64 so the Rust tests compare against the
exact reference. Scalar parameters are stored as 1-element F64 tensors.

Run from the repository root:

    python3 tools/make_op_fixtures.py

Inputs come from numpy's default_rng(0), so the output is deterministic for a
given numpy version. No versions are pinned; the ones used are printed and
recorded in the file's metadata.
"""

import math
import os

import numpy
import safetensors.numpy
import scipy
import scipy.ndimage
import torch
import torch.nn.functional as F

OUT_PATH = os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    "..", "tests", "fixtures", "ops_reference.safetensors",
)
MAX_BYTES = 1 << 20

rng = numpy.random.default_rng(0)
tensors = {}


def randn(*shape, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(numpy.float32)


def f64(x):
    """float32 numpy array -> float64 torch tensor (the reference precision)."""
    return torch.from_numpy(numpy.asarray(x, dtype=numpy.float64))


def scalar(v):
    return numpy.array([v], dtype=numpy.float64)


def put(name, value):
    if isinstance(value, torch.Tensor):
        value = value.numpy()
    assert value.dtype in (numpy.float32, numpy.float64), (name, value.dtype)
    tensors[name] = numpy.ascontiguousarray(value)


def make_resize():
    cases = [
        (2, 5, 7, 13, 11),
        # x14 upscale like 37 -> 518 (ViT-L/14 at 518 px), shrunk to keep the file < 1 MiB.
        (1, 7, 7, 98, 98),
        (3, 17, 13, 5, 6),
        (1, 1, 1, 4, 3),
        (2, 6, 6, 6, 6),
        (1, 4, 10, 4, 3),
    ]
    for i, (c, h, w, oh, ow) in enumerate(cases):
        x = randn(c, h, w)

        def resize(t):
            return F.interpolate(t[None], size=(oh, ow), mode="bilinear", align_corners=False)[0]

        put(f"resize_{i}.x", x)
        put(f"resize_{i}.y", resize(f64(x)))
        # PyTorch's own float32 result, i.e. what users of the f32 op see.
        put(f"resize_{i}.y32", resize(torch.from_numpy(x)))


def make_blur():
    cases = [
        (1, 40, 37, 4.0),
        (2, 3, 5, 1.0),  # plane smaller than the kernel radius
        (1, 1, 1, 4.0),
        (1, 16, 16, 0.5),
        (3, 20, 64, 2.5),
        (1, 7, 300, 4.0),
    ]
    for i, (c, h, w, sigma) in enumerate(cases):
        x = randn(c, h, w)
        # Defaults: mode="reflect", truncate=4.0; one [H, W] plane at a time.
        y = numpy.stack([
            scipy.ndimage.gaussian_filter(plane.astype(numpy.float64), sigma=sigma)
            for plane in x
        ])
        put(f"blur_{i}.x", x)
        put(f"blur_{i}.sigma", scalar(sigma))
        put(f"blur_{i}.y", y)


def make_layer_norm():
    cases = [
        (3, 7, 1e-5, 0.0),
        (5, 64, 1e-5, 0.0),
        (2, 257, 1e-5, 0.0),
        # Large mean, small spread: a one-pass E[x^2] - E[x]^2 variance fails here.
        (4, 33, 1e-5, 1000.0),
    ]
    for i, (r, c, eps, offset) in enumerate(cases):
        x = (randn(r, c) + numpy.float32(offset)).astype(numpy.float32)
        gamma = (1.0 + randn(c, scale=0.1)).astype(numpy.float32)
        beta = randn(c, scale=0.1)
        y = F.layer_norm(f64(x), (c,), weight=f64(gamma), bias=f64(beta), eps=eps)
        put(f"layer_norm_{i}.x", x)
        put(f"layer_norm_{i}.gamma", gamma)
        put(f"layer_norm_{i}.beta", beta)
        put(f"layer_norm_{i}.eps", scalar(eps))
        put(f"layer_norm_{i}.y", y)


def make_softmax():
    for i, (r, c, scale) in enumerate([(3, 7, 1.0), (2, 300, 10.0), (4, 5, 50.0)]):
        x = randn(r, c, scale=scale)
        put(f"softmax_{i}.x", x)
        put(f"softmax_{i}.y", torch.softmax(f64(x), dim=-1))


def make_quick_gelu():
    x = numpy.linspace(-8.0, 8.0, 1000, dtype=numpy.float32)
    t = f64(x)
    put("quick_gelu_0.x", x)
    put("quick_gelu_0.y", t * torch.sigmoid(1.702 * t))


def make_l2_normalize():
    zero_row = randn(3, 5)
    zero_row[1] = 0.0  # F.normalize clamps the norm to eps, giving zeros here
    for i, x in enumerate([randn(3, 7), randn(2, 768), zero_row]):
        put(f"l2_normalize_{i}.x", x)
        put(f"l2_normalize_{i}.y", F.normalize(f64(x), dim=-1))


def make_linear():
    for i, (m, k, n) in enumerate([(1, 1, 1), (5, 7, 3), (65, 33, 70), (17, 64, 129)]):
        a, w, bias = randn(m, k), randn(n, k), randn(n)
        put(f"linear_{i}.a", a)
        put(f"linear_{i}.w", w)
        put(f"linear_{i}.bias", bias)
        put(f"linear_{i}.y", F.linear(f64(a), f64(w), f64(bias)))


def make_matmul():
    for i, (m, k, n) in enumerate([(3, 4, 5), (66, 17, 65)]):
        a, b = randn(m, k), randn(k, n)
        put(f"matmul_{i}.a", a)
        put(f"matmul_{i}.b", b)
        put(f"matmul_{i}.y", f64(a) @ f64(b))

    a, b = randn(3, 5, 7), randn(3, 7, 6)
    put("bmm_0.a", a)
    put("bmm_0.b", b)
    put("bmm_0.y", torch.bmm(f64(a), f64(b)))


def attention(qkv, heads, causal, value_value):
    """Multi-head attention over packed [B, T, 3W] qkv, as CLIP's nn.MultiheadAttention."""
    b, t, w3 = qkv.shape
    w = w3 // 3
    d = w // heads
    q, k, v = qkv.split(w, dim=-1)
    if value_value:
        q = k = v

    def split_heads(m):  # [B, T, W] -> [B, H, T, d]
        return m.reshape(b, t, heads, d).transpose(1, 2)

    q, k, v = split_heads(q), split_heads(k), split_heads(v)
    scores = q @ k.transpose(-1, -2) / math.sqrt(d)
    if causal:
        mask = torch.triu(torch.ones(t, t, dtype=torch.bool), diagonal=1)
        scores = scores.masked_fill(mask, float("-inf"))
    out = torch.softmax(scores, dim=-1) @ v
    return out.transpose(1, 2).reshape(b, t, w)


def make_attention():
    cases = [
        (1, 5, 8, 2, 0, 0),
        (2, 17, 64, 2, 0, 0),
        (1, 77, 64, 2, 1, 0),
        (1, 70, 96, 3, 0, 1),
        (1, 37, 256, 2, 0, 0),  # head dim 128
        (1, 1, 8, 1, 0, 0),
    ]
    for i, (b, t, w, h, causal, vv) in enumerate(cases):
        qkv = randn(b, t, 3 * w)
        put(f"attention_{i}.qkv", qkv)
        put(f"attention_{i}.heads", scalar(h))
        put(f"attention_{i}.causal", scalar(causal))
        put(f"attention_{i}.value_value", scalar(vv))
        put(f"attention_{i}.y", attention(f64(qkv), h, causal, vv))


def make_patch_embed():
    # (3, 30, 17, 5, 4): the spatial remainders are dropped by the strided conv.
    for i, (c, h, w, o, p) in enumerate([(3, 28, 28, 8, 14), (3, 30, 17, 5, 4), (1, 2, 2, 3, 2)]):
        image, weight = randn(c, h, w), randn(o, c, p, p)
        y = F.conv2d(f64(image)[None], f64(weight), stride=p)[0]
        put(f"patch_embed_{i}.image", image)
        put(f"patch_embed_{i}.weight", weight)
        put(f"patch_embed_{i}.y", y.flatten(1).T)


def sinkhorn(cost, eps, max_iters, tol):
    """Log-domain Sinkhorn with uniform marginals; returns (plan, iterations run)."""
    n, m = cost.shape
    log_a, log_b = -math.log(n), -math.log(m)
    log_r = torch.zeros(n, dtype=torch.float64)
    log_c = torch.zeros(m, dtype=torch.float64)
    kernel = -cost / eps
    iters = 0
    for _ in range(max_iters):
        iters += 1
        prev = log_r.exp()
        log_r = log_a - torch.logsumexp(kernel + log_c[None, :], dim=1)
        log_c = log_b - torch.logsumexp(kernel + log_r[:, None], dim=0)
        if (log_r.exp() - prev).abs().mean() < tol:
            break
    return (log_r[:, None] + kernel + log_c[None, :]).exp(), iters


def unit_rows(n, d):
    v = rng.standard_normal((n, d))
    return v / numpy.linalg.norm(v, axis=1, keepdims=True)


def make_sinkhorn():
    cases = [
        (10, 4, 0.1, 100, 1e-2),
        (1369, 4, 0.1, 100, 1e-2),
        (50, 1, 0.1, 100, 1e-2),
        (300, 7, 0.05, 100, 1e-4),
        (20, 3, 0.1, 1, 1e-2),  # stops at the iteration cap
    ]
    for i, (n, m, eps, max_iters, tol) in enumerate(cases):
        # 1 - cosine similarity of unit vectors, so the cost lies in [0, 2].
        cost = (1.0 - unit_rows(n, 16) @ unit_rows(m, 16).T).astype(numpy.float32)
        plan, iters = sinkhorn(f64(cost), eps, max_iters, tol)
        put(f"sinkhorn_{i}.cost", cost)
        put(f"sinkhorn_{i}.eps", scalar(eps))
        put(f"sinkhorn_{i}.max_iters", scalar(max_iters))
        put(f"sinkhorn_{i}.tol", scalar(tol))
        put(f"sinkhorn_{i}.iters", scalar(iters))
        put(f"sinkhorn_{i}.plan", plan)


def top_k_renorm(x, k):
    """Keep the k largest per row (ties -> lower index), zero the rest, renormalise."""
    y = numpy.zeros_like(x)
    for r, row in enumerate(x):
        # lexsort sorts by the last key first: descending value, then ascending index.
        keep = numpy.lexsort((numpy.arange(row.size), -row))[:k]
        y[r, keep] = row[keep] / row[keep].sum()
    return y


def make_top_k():
    cases = [
        (rng.uniform(0.05, 1.0, (6, 4)), 2),
        (rng.uniform(0.05, 1.0, (5, 7)), 3),
        (rng.uniform(0.05, 1.0, (3, 4)), 4),
        (rng.uniform(0.05, 1.0, (4, 1)), 1),
        # Explicit ties: the lower index must win.
        (numpy.array([
            [0.2, 0.3, 0.3, 0.2],
            [0.5, 0.5, 0.5, 0.5],
            [0.1, 0.4, 0.1, 0.4],
            [0.3, 0.2, 0.2, 0.1],
        ]), 2),
    ]
    for i, (x, k) in enumerate(cases):
        x = x.astype(numpy.float32)
        put(f"top_k_{i}.x", x)
        put(f"top_k_{i}.k", scalar(k))
        put(f"top_k_{i}.y", top_k_renorm(x.astype(numpy.float64), k))


def main():
    print(f"torch {torch.__version__}, scipy {scipy.__version__}, numpy {numpy.__version__}")
    make_resize()
    make_blur()
    make_layer_norm()
    make_softmax()
    make_quick_gelu()
    make_l2_normalize()
    make_linear()
    make_matmul()
    make_attention()
    make_patch_embed()
    make_sinkhorn()
    make_top_k()

    metadata = {
        "script": "tools/make_op_fixtures.py",
        "command": "python3 tools/make_op_fixtures.py",
        "seed": "0",
        "torch": torch.__version__,
        "scipy": scipy.__version__,
        "numpy": numpy.__version__,
        "note": "inputs f32, expected values computed in float64 by PyTorch/SciPy",
    }
    path = os.path.normpath(OUT_PATH)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    safetensors.numpy.save_file(tensors, path, metadata=metadata)

    for name, value in tensors.items():
        dtype = "F64" if value.dtype == numpy.float64 else "F32"
        print(f"{name:28s} {dtype} {list(value.shape)}")
    size = os.path.getsize(path)
    print(f"wrote {path}: {len(tensors)} tensors, {size} bytes")
    assert size < MAX_BYTES, f"fixture file is {size} bytes, must stay under {MAX_BYTES}"


if __name__ == "__main__":
    main()
