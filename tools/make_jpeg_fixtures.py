#!/usr/bin/env python3
"""JPEG decoding fixtures from the reference decoder: PIL (Pillow with its bundled libjpeg-turbo,
the decoder open_clip and AnomalyCLIP read images with), so tokenclip's own JPEG decoder can be
checked to give the very same pixels.

Writes under tests/fixtures/jpeg/:
  NAME.jpg               small JPEGs written by PIL from synthetic images (smooth gradients,
                         edges and noise, sizes that are not multiples of 8 or 16): baseline and
                         progressive; 4:4:4, 4:2:2 and 4:2:0; qualities 30..95; optimised Huffman
                         tables; restart intervals; grayscale; CMYK (Adobe); EXIF orientations;
                         tiny images (1x1, 2x2, 3x17: chroma 1-2 samples wide);
  expected.safetensors   for each NAME the U8 tensor [H, W, 3]:
                         ImageOps.exif_transpose(Image.open(NAME.jpg)).convert("RGB")
                         (tokenclip applies EXIF orientation, as exif_transpose does);
  shared.json            the same, as sha256 + size of the RGB bytes, for every JPEG under
                         ../shared/data (too large to store as pixels), and each one's mode,
                         subsampling and progressiveness as PIL reports them.

Command: python3 tools/make_jpeg_fixtures.py     (needs Pillow and numpy)
"""
import hashlib
import io
import json
import os

import numpy as np
import PIL
import PIL.features
from PIL import Image, ImageOps, JpegImagePlugin
from safetensors.numpy import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "jpeg")
DATA = os.path.join(os.path.dirname(ROOT), "shared", "data")
SEED = 20261203


def synthetic(w, h, seed):
    """Gradients, a sharp-edged disc and block pattern, and noise: every DCT band gets energy."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 100 * np.sin(x / max(w, 1) * 5.1 + y / max(h, 1) * 1.3)
    g = 128 + 90 * np.cos(y / max(h, 1) * 4.3) * np.sin(x / 7.0)
    b = 255 * ((x + 2 * y) % 37) / 37
    disc = (x - w * 0.6) ** 2 + (y - h * 0.4) ** 2 < (min(w, h) * 0.25) ** 2
    r[disc], g[disc], b[disc] = 250, 30, 60
    checker = ((x // 5 + y // 3) % 2 == 0) & (x < w * 0.3)
    g[checker] = 10
    img = np.stack([r, g, b], -1) + rng.normal(0, 12, (h, w, 3))
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def variants():
    big, odd = synthetic(101, 77, SEED), synthetic(67, 45, SEED + 1)
    out = []
    for name, im in [("big", big), ("odd", odd)]:
        for sub, tag in [(0, "444"), (1, "422"), (2, "420")]:
            out.append((f"{name}_{tag}_q90", im, dict(quality=90, subsampling=sub)))
            out.append((f"{name}_{tag}_progressive", im, dict(quality=85, subsampling=sub, progressive=True)))
        out.append((f"{name}_420_q30_optimized", im, dict(quality=30, subsampling=2, optimize=True)))
        out.append((f"{name}_420_q95", im, dict(quality=95, subsampling=2)))
        out.append((f"{name}_gray", im.convert("L"), dict(quality=80)))
        out.append((f"{name}_gray_progressive", im.convert("L"), dict(quality=80, progressive=True)))
        out.append((f"{name}_cmyk", im.convert("CMYK"), dict(quality=88)))
    out.append(("big_420_restart_blocks", big, dict(quality=75, subsampling=2, restart_marker_blocks=3)))
    out.append(("big_444_restart_rows", big, dict(quality=75, subsampling=0, restart_marker_rows=1)))
    out.append(("big_420_progressive_restart", big, dict(quality=75, subsampling=2, progressive=True,
                                                          restart_marker_blocks=5)))
    for orientation in [3, 6, 8]:
        exif = Image.Exif()
        exif[0x0112] = orientation
        out.append((f"odd_420_exif{orientation}", odd, dict(quality=90, subsampling=2, exif=exif.tobytes())))
    for w, h in [(1, 1), (2, 2), (3, 17), (17, 3), (9, 9)]:
        for sub, tag in [(1, "422"), (2, "420")]:
            out.append((f"tiny_{w}x{h}_{tag}", synthetic(w, h, SEED + w * 31 + h), dict(quality=90, subsampling=sub)))
    return out


def reference(data):
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def describe(im):
    return {"mode": im.mode, "subsampling": JpegImagePlugin.get_sampling(im),
            "progressive": bool(im.info.get("progressive") or im.info.get("progression"))}


def main():
    os.makedirs(OUT, exist_ok=True)
    tensors = {}
    for name, im, opts in variants():
        buf = io.BytesIO()
        im.save(buf, "JPEG", **opts)
        data = buf.getvalue()
        with open(os.path.join(OUT, f"{name}.jpg"), "wb") as f:
            f.write(data)
        tensors[name] = np.ascontiguousarray(reference(data))
    meta = {"script": "tools/make_jpeg_fixtures.py", "command": "python3 tools/make_jpeg_fixtures.py",
            "pillow": PIL.__version__, "libjpeg_turbo": PIL.features.version_feature("libjpeg_turbo") or "",
            "reference": "ImageOps.exif_transpose(Image.open(f)).convert('RGB')"}
    save_file(tensors, os.path.join(OUT, "expected.safetensors"), metadata=meta)

    shared = {}
    for root, _, files in os.walk(DATA):
        for f in sorted(files):
            if not f.lower().endswith((".jpg", ".jpeg")):
                continue
            path = os.path.join(root, f)
            data = open(path, "rb").read()
            rgb = reference(data)
            with Image.open(io.BytesIO(data)) as im:
                info = describe(im)
            shared[os.path.relpath(path, DATA)] = dict(
                width=int(rgb.shape[1]), height=int(rgb.shape[0]),
                sha256=hashlib.sha256(rgb.tobytes()).hexdigest(), **info)
    with open(os.path.join(OUT, "shared.json"), "w") as f:
        json.dump({"meta": meta, "images": shared}, f, indent=1, sort_keys=True)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"{len(tensors)} generated JPEGs, {len(shared)} from ../shared/data; {total / 1e3:.0f} kB in {OUT}")


if __name__ == "__main__":
    main()
