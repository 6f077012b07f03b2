#!/usr/bin/env python3
"""JPEG decoding fixtures from the reference decoder: PIL (Pillow with its bundled libjpeg-turbo,
the decoder open_clip and AnomalyCLIP read images with), so tokenclip's own JPEG decoder can be
checked to give the very same pixels.

Writes under tests/fixtures/jpeg/:
  NAME.jpg               small JPEGs written by PIL from synthetic images (smooth gradients,
                         edges and noise, sizes that are not multiples of 8 or 16): baseline and
                         progressive; 4:4:4, 4:2:2 and 4:2:0; qualities 30..95; optimised Huffman
                         tables; restart intervals; grayscale; CMYK (Adobe); EXIF orientations;
                         tiny images (1x1, 2x2, 3x17: chroma 1-2 samples wide); and
                         sequential files coded in several scans (one component per scan, or
                         luma then both chroma), rewritten by libjpeg-turbo's jpegtran -scans
                         (PIL writes one scan only);
  crafted_*.jpg          hand-made grey files whose every block adds the largest DC difference:
                         with a DC quantiser of 0, the predictor passes 2^31 (a sequential file,
                         which libjpeg-turbo decodes with the sum wrapping; a progressive one,
                         which it refuses); with 1, coefficients beyond what 8-bit JPEG allows,
                         where libjpeg-turbo's SIMD IDCT (16-bit lanes) and its C IDCT differ;
  crafted.json           for those: size and sha256 of PIL's RGB bytes, or PIL's refusal;
  expected.safetensors   for each NAME the U8 tensor [H, W, 3]:
                         ImageOps.exif_transpose(Image.open(NAME.jpg)).convert("RGB")
                         (tokenclip applies EXIF orientation, as exif_transpose does);
  shared.json            the same, as sha256 + size of the RGB bytes, for every JPEG under
                         ../shared/data (too large to store as pixels), and each one's mode,
                         subsampling and progressiveness as PIL reports them.

Command: python3 tools/make_jpeg_fixtures.py     (needs Pillow, numpy, safetensors and jpegtran:
Debian's libjpeg-turbo-progs)
"""
import hashlib
import io
import json
import os
import shutil
import subprocess

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


# Sequential files in several scans: (name, the PIL-written fixture it rewrites, jpegtran scan script).
MULTI_SCAN = [
    ("big_420_scan_per_component", "big_420_q90", "0;\n1;\n2;\n"),
    ("odd_444_scans_luma_then_chroma", "odd_444_q90", "0;\n1 2;\n"),
    ("odd_422_scans_chroma_first", "odd_422_q90", "1;\n2;\n0;\n"),
]


def rescan(data, script):
    """The same coefficients as a sequential file in the scans `script` gives (jpegtran -scans)."""
    jpegtran = shutil.which("jpegtran")
    if jpegtran is None:
        raise SystemExit("jpegtran not found: install libjpeg-turbo-progs")
    path = os.path.join(OUT, "scans.txt")
    with open(path, "w") as f:
        f.write(script)
    try:
        out = subprocess.run([jpegtran, "-scans", path], input=data, capture_output=True, check=True).stdout
    finally:
        os.remove(path)
    assert out.count(b"\xff\xda") == script.count(";") and b"\xff\xc0" in out, "not a sequential multi-scan file"
    return out


def crafted_dc(progressive, w, h, dc_quant):
    """A grey JPEG, AC quantisers 1 and the DC one `dc_quant`, whose every block adds the
    largest DC difference (category 15, +32767); AC all zero. At 65,539 blocks and more the
    predictor passes 2^31."""
    def segment(code, body):
        return bytes([0xFF, code]) + (len(body) + 2).to_bytes(2, "big") + body

    def entropy(bits):
        bits = bits + [1] * (-len(bits) % 8)
        out = bytearray()
        for i in range(0, len(bits), 8):
            out.append(int("".join(map(str, bits[i:i + 8])), 2))
            if out[-1] == 0xFF:
                out.append(0)
        return bytes(out)

    blocks = (w // 8) * (h // 8)
    dc = [1, 0] + [1] * 15  # code '10' (category 15), then 15 one bits: +32767
    data = b"\xff\xd8" + segment(0xDB, bytes([0, dc_quant]) + b"\x01" * 63)
    data += segment(0xC2 if progressive else 0xC0, bytes([8]) + h.to_bytes(2, "big") + w.to_bytes(2, "big")
                    + bytes([1, 1, 0x11, 0]))
    data += segment(0xC4, bytes([0x00, 1, 1] + [0] * 14 + [0, 15]))  # DC: '0' -> 0, '10' -> 15
    if not progressive:
        data += segment(0xC4, bytes([0x10, 1] + [0] * 15 + [0x00]))  # AC: '0' -> end of block
        data += segment(0xDA, bytes([1, 1, 0x00, 0, 63, 0]))
        return data + entropy([b for _ in range(blocks) for b in dc + [0]]) + b"\xff\xd9"
    data += segment(0xC4, bytes([0x10, 1] + [0] * 15 + [0xE0]))  # AC: '0' -> EOB run, 14 extra bits
    data += segment(0xDA, bytes([1, 1, 0x00, 0, 0, 0]))  # DC first scan
    data += entropy([b for _ in range(blocks) for b in dc])
    data += segment(0xDA, bytes([1, 1, 0x00, 1, 63, 0]))  # AC first scan: end-of-band runs
    runs, left = [], blocks
    while left:
        run = min(left, 32767)
        assert run >= 1 << 14
        runs += [0] + [int(c) for c in format(run - (1 << 14), "014b")]
        left -= run
    return data + entropy(runs) + b"\xff\xd9"


def reference(data):
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def describe(im):
    return {"mode": im.mode, "subsampling": JpegImagePlugin.get_sampling(im),
            "progressive": bool(im.info.get("progressive") or im.info.get("progression"))}


def main():
    os.makedirs(OUT, exist_ok=True)
    tensors, written = {}, {}
    files = []
    for name, im, opts in variants():
        buf = io.BytesIO()
        im.save(buf, "JPEG", **opts)
        written[name] = buf.getvalue()
        files.append((name, written[name]))
    files += [(name, rescan(written[source], script)) for name, source, script in MULTI_SCAN]
    for name, data in files:
        with open(os.path.join(OUT, f"{name}.jpg"), "wb") as f:
            f.write(data)
        tensors[name] = np.ascontiguousarray(reference(data))
    meta = {"script": "tools/make_jpeg_fixtures.py", "command": "python3 tools/make_jpeg_fixtures.py",
            "pillow": PIL.__version__, "libjpeg_turbo": PIL.features.version_feature("libjpeg_turbo") or "",
            "reference": "ImageOps.exif_transpose(Image.open(f)).convert('RGB')"}
    save_file(tensors, os.path.join(OUT, "expected.safetensors"), metadata=meta)

    crafted = {}
    for name, progressive, w, h, dc_quant in [("crafted_dc_wraps_sequential", False, 2080, 2024, 0),
                                              ("crafted_dc_overflow_progressive", True, 2088, 2520, 0),
                                              ("crafted_coefficients_out_of_range", False, 64, 64, 1)]:
        data = crafted_dc(progressive, w, h, dc_quant)
        with open(os.path.join(OUT, f"{name}.jpg"), "wb") as f:
            f.write(data)
        try:
            rgb = reference(data)
            crafted[name] = dict(width=int(rgb.shape[1]), height=int(rgb.shape[0]),
                                 sha256=hashlib.sha256(rgb.tobytes()).hexdigest())
        except OSError as e:
            crafted[name] = dict(refused=str(e))
    with open(os.path.join(OUT, "crafted.json"), "w") as f:
        json.dump({"meta": meta, "images": crafted}, f, indent=1, sort_keys=True)
        f.write("\n")

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
