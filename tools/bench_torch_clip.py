#!/usr/bin/env python3
"""Reference timing: open_clip's image encoder on PyTorch (float32; CPU, or CUDA with TF32 off),
random weights.

For each (architecture, size) it builds the model with random weights (as `tokenclip bench
--model` uses a random-weight model file), resizes the positional embedding for sizes other than
the native one (as the detector does), times `encode_image` on one image: one warm-up, then the
median of --reps runs. Also prints the process's peak resident memory.

    python3 tools/bench_torch_clip.py [--threads N] [--reps R] [--only ViT-B-16:224,...] [--device cuda]
"""
import argparse
import resource
import statistics
import time

import open_clip
import torch
import torch.nn.functional as F

CASES = [("ViT-B-16", 224), ("ViT-L-14-336", 336), ("ViT-L-14-336", 518)]


def resize_positional(visual, size):
    grid = size // visual.patch_size[0]
    pos = visual.positional_embedding.data
    old = int((pos.shape[0] - 1) ** 0.5)
    if old == grid:
        return
    g = pos[1:].reshape(1, old, old, -1).permute(0, 3, 1, 2)
    g = F.interpolate(g, (grid, grid), mode="bilinear", align_corners=False)
    visual.positional_embedding = torch.nn.Parameter(torch.cat([pos[:1], g.permute(0, 2, 3, 1).reshape(grid * grid, -1)]))
    visual.image_size = (size, size)
    visual.grid_size = (grid, grid)


@torch.no_grad()
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--only", default=None, help="comma-separated ARCH:SIZE list")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (fp32 with TF32 off: true f32 products)")
    a = ap.parse_args()
    dev = torch.device(a.device)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    if a.threads:
        torch.set_num_threads(a.threads)
    cases = [(c.split(":")[0], int(c.split(":")[1])) for c in a.only.split(",")] if a.only else CASES
    where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, open_clip {open_clip.__version__}, {where}")
    models = {}
    for arch, size in cases:
        if arch not in models:
            models[arch] = open_clip.create_model(arch, pretrained=None, force_quick_gelu=True).eval().to(dev)
        model = models[arch]
        resize_positional(model.visual, size)
        x = torch.randn(1, 3, size, size, device=dev)
        model.encode_image(x)
        sync()
        times = []
        for _ in range(a.reps):
            t = time.perf_counter()
            model.encode_image(x)
            sync()
            times.append(time.perf_counter() - t)
        print(f"{arch} at {size} px: median {statistics.median(times):.3f} s (min {min(times):.3f} s) over {a.reps}")
    print(f"peak resident memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
