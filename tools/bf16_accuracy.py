#!/usr/bin/env python3
"""`--precision bf16` against f32: `tokenclip detect` run twice on the same images and model.

Runs `tokenclip --backend cpu --precision P detect --model M --save-maps --map-size model --out
DIR/P IMAGES...` for P = f32 and bf16, then compares per image the score and the map (max and
mean absolute difference, the map's range for scale) and whether the flag agrees. Standard
library only, plus the tokenclip binary (target/release/tokenclip unless --binary).

    python3 tools/bf16_accuracy.py --model MODEL.safetensors IMAGE_OR_DIR... [--out /tmp/bf16-acc]
"""

import argparse
import json
import struct
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def read_npy(path):
    """A little-endian f4 .npy array as a flat list (the maps tokenclip writes)."""
    raw = path.read_bytes()
    if raw[:6] != b"\x93NUMPY":
        raise SystemExit(f"{path}: not a .npy file")
    major = raw[6]
    hlen = struct.unpack("<H" if major == 1 else "<I", raw[8:10] if major == 1 else raw[8:12])[0]
    start = (10 if major == 1 else 12) + hlen
    header = raw[start - hlen:start].decode("latin1")
    if "'<f4'" not in header:
        raise SystemExit(f"{path}: not float32 ({header})")
    n = (len(raw) - start) // 4
    return struct.unpack(f"<{n}f", raw[start:start + 4 * n])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("images", nargs="+")
    ap.add_argument("--out", type=Path, default=Path("/tmp/bf16-accuracy"))
    ap.add_argument("--binary", type=Path, default=ROOT / "target/release/tokenclip")
    a = ap.parse_args()
    runs = {}
    for p in ["f32", "bf16"]:
        out = a.out / p
        subprocess.run([str(a.binary), "--backend", "cpu", "--precision", p, "detect", "--model", a.model,
                        "--save-maps", "--map-size", "model", "--out", str(out), *a.images], check=True)
        runs[p] = {Path(r["path"]).name: r for r in json.loads((out / "scores.json").read_text())["images"]}
    print("| image | score f32 | score bf16 | |Δ score| | map max |Δ| | map mean |Δ| | map range | flag same |")
    print("|---|---|---|---|---|---|---|---|")
    worst = {"score": 0.0, "map": 0.0}
    for name, f in runs["f32"].items():
        b = runs["bf16"][name]
        stem = Path(name).stem
        mf = read_npy(a.out / "f32" / f"{stem}.map.npy")
        mb = read_npy(a.out / "bf16" / f"{stem}.map.npy")
        diffs = [abs(x - y) for x, y in zip(mf, mb)]
        ds = abs(f["score"] - b["score"])
        worst["score"], worst["map"] = max(worst["score"], ds), max(worst["map"], max(diffs))
        print(f"| {name} | {f['score']:.6f} | {b['score']:.6f} | {ds:.2e} | {max(diffs):.2e} | "
              f"{sum(diffs) / len(diffs):.2e} | {min(mf):.3f}–{max(mf):.3f} | {f['flagged'] == b['flagged']} |")
    print(f"\nworst: score {worst['score']:.2e}, map {worst['map']:.2e}")


if __name__ == "__main__":
    main()
