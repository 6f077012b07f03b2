#!/usr/bin/env python3
"""Reference masks for src/eval/mask.rs: AnomalyCLIP's ground-truth pipeline on small synthetic masks.

AnomalyCLIP (zqhang/AnomalyCLIP) reads a mask in dataset.py as
    m = np.array(Image.open(path).convert('L')) > 0
    m = Image.fromarray(m.astype(np.uint8) * 255, mode='L')
applies utils.py's target_transform
    transforms.Compose([transforms.Resize((S, S)), transforms.CenterCrop(S), transforms.ToTensor()])
and test.py thresholds it: gt[gt > 0.5] = 1, gt[gt <= 0.5] = 0.

Writes
  tests/fixtures/masks/*.png        the synthetic masks (L, LA, RGB, palette, 16-bit grey)
  tests/fixtures/masks/expected.json
      {"versions": {...}, "cases": [{"file", "size", "width", "height", "rows": ["0101…", …]}]}

Run from the repository root:  python3 tools/make_mask_fixtures.py
"""

import json
import os

import numpy as np
import PIL
from PIL import Image
import torch
import torchvision
from torchvision import transforms

OUT = "tests/fixtures/masks"
rng = np.random.default_rng(6)


def blobs(h, w, values):
    """A mask of a few filled ellipses and rectangles, drawn with the given values."""
    m = np.zeros((h, w), dtype=np.int64)
    yy, xx = np.mgrid[0:h, 0:w]
    for i, v in enumerate(values):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        ry, rx = rng.uniform(1, h / 3), rng.uniform(1, w / 3)
        if i % 2 == 0:
            m[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = v
        else:
            m[int(cy * 0.8):int(cy * 0.8 + ry), int(cx * 0.8):int(cx * 0.8 + rx)] = v
    m[0, 0] = values[0]  # a one-pixel region in a corner
    return m


def make_inputs():
    cases = []
    l = blobs(29, 37, [255, 1, 128, 255])
    Image.fromarray(l.astype(np.uint8), "L").save(f"{OUT}/l_37x29.png")
    cases += [("l_37x29.png", 16), ("l_37x29.png", 64)]

    big = blobs(200, 300, [255, 255, 3, 255])
    Image.fromarray(big.astype(np.uint8), "L").save(f"{OUT}/l_300x200.png")
    cases += [("l_300x200.png", 64), ("l_300x200.png", 37)]

    rgb = np.zeros((40, 50, 3), dtype=np.uint8)
    ids = blobs(40, 50, [1, 2, 3, 4])
    rgb[ids == 1] = (0, 0, 4)  # PIL luma 0: not anomalous
    rgb[ids == 2] = (0, 0, 5)  # luma 1
    rgb[ids == 3] = (255, 0, 0)
    rgb[ids == 4] = (0, 200, 0)
    Image.fromarray(rgb, "RGB").save(f"{OUT}/rgb_50x40.png")
    cases += [("rgb_50x40.png", 64), ("rgb_50x40.png", 20)]

    p = Image.fromarray(blobs(45, 45, [1, 2, 1, 3]).astype(np.uint8), "P")
    p.putpalette([0, 0, 0, 0, 0, 2, 255, 255, 255, 10, 20, 30] + [0] * (256 * 3 - 12))
    p.save(f"{OUT}/p_45x45.png")
    cases += [("p_45x45.png", 32)]

    l16 = blobs(20, 30, [1, 300, 65535, 256])
    Image.fromarray(l16.astype(np.uint16)).save(f"{OUT}/l16_30x20.png")
    cases += [("l16_30x20.png", 24)]

    la = np.stack([blobs(21, 19, [255, 7]), np.full((21, 19), 0)], axis=-1).astype(np.uint8)
    Image.fromarray(la, "LA").save(f"{OUT}/la_19x21.png")
    cases += [("la_19x21.png", 19), ("la_19x21.png", 8)]
    return cases


def reference(path, size):
    img = Image.open(path)
    m = np.array(img.convert("L")) > 0
    m = Image.fromarray(m.astype(np.uint8) * 255, mode="L")
    t = transforms.Compose([transforms.Resize((size, size)), transforms.CenterCrop(size), transforms.ToTensor()])
    gt = t(m)
    gt[gt > 0.5], gt[gt <= 0.5] = 1, 0
    return img.size, gt[0].numpy().astype(np.uint8)


def main():
    os.makedirs(OUT, exist_ok=True)
    out = []
    for name, size in make_inputs():
        (w, h), gt = reference(f"{OUT}/{name}", size)
        rows = ["".join(str(v) for v in row) for row in gt]
        out.append({"file": name, "size": size, "width": w, "height": h, "rows": rows})
    versions = {"PIL": PIL.__version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
                "numpy": np.__version__}
    with open(f"{OUT}/expected.json", "w") as f:
        json.dump({"versions": versions, "script": "tools/make_mask_fixtures.py", "cases": out}, f, indent=1)
        f.write("\n")
    print(f"wrote {len(out)} cases to {OUT}/expected.json")


if __name__ == "__main__":
    main()
