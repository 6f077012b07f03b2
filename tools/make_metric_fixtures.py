"""Generate golden fixtures for tokenclip's evaluation metrics (src/eval/).

Writes two files under tests/fixtures/metrics/:

* ``inputs.safetensors``: the inputs of every stored case. Binary (image-level
  style) cases have ``<case>/scores`` (F32, [n]) and ``<case>/labels`` (U8, [n]);
  pixel cases have ``<case>/maps`` (F32, [images, height, width]) and
  ``<case>/masks`` (U8, same shape).
* ``reference.json``: per case, what scikit-learn / scikit-image / the
  reference AUPRO code give, with ``null`` plus a reason where the metric is
  undefined (sklearn raises, returns nan, or only warns and returns a
  placeholder, see ``UNDEFINED`` below).

One pixel case (``pix_low_bits_1m``, about 1e6 pixels whose scores differ only
in their low 20 bits) is too large to store; it is produced by a tiny
integer generator (splitmix64 over the pixel index) that the Rust test
re-implements bit for bit, and only its parameters and results are stored.

Metrics and how each expected value is obtained:

* ``roc_auc``: ``sklearn.metrics.roc_auc_score``.
* ``average_precision``: ``sklearn.metrics.average_precision_score``.
* ``f1_max``: max over the points of ``sklearn.metrics.precision_recall_curve``
  of 2PR/(P+R) (0 where P+R = 0), as AnomalyCLIP-style code computes F1-max.
* ``aupro_exact``: our own plain numpy implementation (``aupro_exact`` below),
  not a library call: components of each mask by ``skimage.measure.label``
  (default connectivity = ndim, i.e. 8-connectivity in 2-D); every distinct
  score is a threshold; FPR over the normal pixels and PRO = the mean over
  all components (pooled over images) of the fraction of the component at or
  above the threshold; the piecewise-linear curve from (0, 0) is integrated
  up to FPR 0.3, interpolating linearly at 0.3, and divided by 0.3 (the
  definition of the MVTec AD evaluation code).
* ``aupro_sampled``: ``aupro_sampled`` below, written to behave exactly as
  ``cal_pro_score`` in zqhang/AnomalyCLIP ``metrics.py`` (taken there from
  cflow-ad): thresholds ``np.arange(min, max, (max - min) / 200)`` on the
  float32 maps (numpy >= 2 semantics), a pixel is anomalous when its score is
  ``> th``, PRO = mean over the regions of ``skimage.measure.regionprops(
  skimage.measure.label(mask))`` of tp/area, FPR = fp / normal pixels; points
  with FPR < 0.3 (strict) are kept, their FPRs min-max rescaled to [0, 1] and
  ``sklearn.metrics.auc`` taken.
* ``component_sizes``: sorted sizes of all components of all masks.

Requirements: numpy, scipy, scikit-learn, scikit-image, safetensors. If
scikit-learn or scikit-image are missing: ``pip install scikit-learn
scikit-image``. Versions used are recorded in the JSON ``meta``.

Run from the repository root:

    python3 tools/make_metric_fixtures.py

Everything is seeded (numpy ``default_rng(SEED)`` and the integer generator),
so the output is deterministic for given library versions.
"""

import json
import math
import os
import sys
import warnings

import numpy as np
import safetensors.numpy
import scipy
import scipy.ndimage
import skimage
import sklearn
from skimage import measure
from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score

SEED = 20240611
FPR_LIMIT = 0.3
OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "metrics")

# Where the metric is undefined we store null and one of these reasons (the
# names of tokenclip::eval::Undefined in snake_case).
UNDEFINED = {
    "no_anomalous": "no anomalous samples: sklearn roc_auc_score returns nan, "
    "average_precision_score warns and returns 0, precision_recall_curve sets recall to 1",
    "no_normal": "no normal samples: sklearn roc_auc_score returns nan; AUPRO's FPR is 0/0",
    "constant_scores": "min == max: the reference np.arange step is 0 and it raises",
    "too_few_points": "fewer than two sampled thresholds with FPR < 0.3 (sklearn auc raises) "
    "or all of them have the same FPR (min-max rescaling divides by 0)",
}


# --------------------------------------------------------------------------
# The integer generator shared with tests/eval_metrics.rs.


def splitmix64(x):
    """splitmix64 finaliser on a uint64 numpy array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def low_bits_case(images, size, seed):
    """Maps in [0.5, 0.5625): bit patterns 0x3F000000 + a 20-bit offset.

    Mask: 32x32 squares where (y // 32 + x // 32 + image) % 5 == 0; squares on
    one anti-diagonal touch at corners, so 8-connectivity chains them.
    Offset: splitmix64(seed * 2^32 + pixel index) >> 44 (20 bits), plus 2^18
    on anomalous pixels.
    """
    n = images * size * size
    idx = np.arange(n, dtype=np.uint64) + np.uint64(seed) * np.uint64(1 << 32)
    h = splitmix64(idx) >> np.uint64(44)
    img = np.arange(images)[:, None, None]
    y = np.arange(size)[None, :, None]
    x = np.arange(size)[None, None, :]
    masks = ((y // 32 + x // 32 + img) % 5 == 0)
    masks = np.broadcast_to(masks, (images, size, size))
    bits = np.uint64(0x3F000000) + h.reshape(images, size, size) + masks.astype(np.uint64) * np.uint64(1 << 18)
    maps = bits.astype(np.uint32).view(np.float32)
    return maps, masks.astype(np.uint8)


# --------------------------------------------------------------------------
# Reference metrics.


def f1_max(labels, scores):
    p, r, _ = precision_recall_curve(labels, scores)
    denom = p + r
    f1 = np.where(denom > 0, 2 * p * r / np.where(denom > 0, denom, 1), 0.0)
    return float(np.max(f1))


def binary_expected(labels, scores):
    """sklearn's values, or null + reason where undefined."""
    labels = labels.astype(np.int64)
    out = {}
    pos = int(labels.sum())
    neg = int(len(labels) - pos)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if pos == 0 or neg == 0:
            out["roc_auc"] = None
            out["roc_auc_undefined"] = "no_anomalous" if pos == 0 else "no_normal"
            out["sklearn_roc_auc"] = repr(roc_auc_score(labels, scores))
        else:
            out["roc_auc"] = float(roc_auc_score(labels, scores))
        if pos == 0:
            out["average_precision"] = None
            out["average_precision_undefined"] = "no_anomalous"
            out["sklearn_average_precision"] = repr(average_precision_score(labels, scores))
            out["f1_max"] = None
            out["f1_max_undefined"] = "no_anomalous"
        else:
            out["average_precision"] = float(average_precision_score(labels, scores))
            out["f1_max"] = f1_max(labels, scores)
    return out


def components(masks):
    """Per image, the skimage labelling of its mask (default connectivity)."""
    return [measure.label(m.astype(bool)) for m in masks]


def aupro_exact(maps, masks, limit=FPR_LIMIT):
    """Exact PRO-vs-FPR area to FPR `limit`, divided by `limit` (see module doc)."""
    labels = components(masks)
    weights = np.zeros(maps.shape, dtype=np.float64)
    n_comp = 0
    for i, lab in enumerate(labels):
        sizes = np.bincount(lab.ravel())
        for c in range(1, len(sizes)):
            weights[i][lab == c] = 1.0 / sizes[c]
        n_comp += len(sizes) - 1
    normal = masks.ravel() == 0
    n_normal = int(normal.sum())
    if n_comp == 0:
        return None, "no_anomalous"
    if n_normal == 0:
        return None, "no_normal"
    scores = maps.ravel().astype(np.float64)
    order = np.argsort(-scores, kind="stable")
    s = scores[order]
    fp = np.cumsum(normal[order].astype(np.int64))
    pro = np.cumsum(weights.ravel()[order]) / n_comp
    ends = np.r_[np.diff(s) != 0, True]
    fpr = np.r_[0.0, fp[ends] / n_normal]
    pro = np.r_[0.0, pro[ends]]
    area = 0.0
    for k in range(1, len(fpr)):
        x0, x1, y0, y1 = fpr[k - 1], fpr[k], pro[k - 1], pro[k]
        if x1 <= limit:
            area += (x1 - x0) * (y0 + y1) / 2
            if x1 == limit:
                break
        else:
            y_lim = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
            area += (limit - x0) * (y0 + y_lim) / 2
            break
    return float(area / limit), None


def aupro_sampled(maps, masks, steps=200, expect_fpr=FPR_LIMIT):
    """Behaves as AnomalyCLIP's cal_pro_score (see module doc); None + reason where it fails."""
    maps = maps.astype(np.float32)
    masks = masks.astype(np.float32)
    lo, hi = maps.min(), maps.max()
    step = (hi - lo) / steps  # float32 scalar arithmetic, as the reference
    normal = 1 - masks
    n_normal = normal.sum()
    regions = [measure.regionprops(lab) for lab in components(masks)]
    if sum(len(r) for r in regions) == 0:
        return None, "no_anomalous"
    if n_normal == 0:
        return None, "no_normal"
    if not step > 0:
        return None, "constant_scores"
    pros, fprs = [], []
    for th in np.arange(lo, hi, step):
        above = maps > th
        overlaps = []
        for i, regs in enumerate(regions):
            for reg in regs:
                overlaps.append(above[i][reg.coords[:, 0], reg.coords[:, 1]].sum() / reg.area)
        pros.append(np.mean(overlaps))
        fprs.append(np.logical_and(normal, above).sum() / n_normal)
    pros, fprs = np.array(pros), np.array(fprs)
    keep = fprs < expect_fpr
    fprs, pros = fprs[keep], pros[keep]
    if len(fprs) < 2 or fprs.max() == fprs.min():
        return None, "too_few_points"
    fprs = (fprs - fprs.min()) / (fprs.max() - fprs.min())
    return float(auc(fprs, pros)), None


def pixel_expected(maps, masks):
    out = binary_expected(masks.ravel(), maps.ravel())
    value, reason = aupro_exact(maps, masks)
    out["aupro_exact"] = value
    if reason:
        out["aupro_exact_undefined"] = reason
    value, reason = aupro_sampled(maps, masks)
    out["aupro_sampled"] = value
    if reason:
        out["aupro_sampled_undefined"] = reason
    sizes = []
    for lab in components(masks):
        sizes.extend(int(c) for c in np.bincount(lab.ravel())[1:])
    out["component_sizes"] = sorted(sizes)
    return out


# --------------------------------------------------------------------------
# Cases.


def binary_cases(rng):
    cases = {}

    def scored(n, pos_frac, sep):
        labels = (rng.random(n) < pos_frac).astype(np.uint8)
        scores = (rng.normal(size=n) + sep * labels).astype(np.float32)
        return scores, labels

    cases["random_10"] = scored(10, 0.4, 1.0)
    cases["random_100"] = scored(100, 0.3, 1.0)
    cases["random_1000"] = scored(1000, 0.2, 0.7)
    cases["random_20000"] = scored(20000, 0.1, 1.5)
    s, l = scored(2000, 0.35, 0.8)
    cases["heavy_ties_5_levels"] = (np.round(s * 1.5).clip(-2, 2).astype(np.float32), l)
    s, l = scored(500, 0.5, 0.5)
    s[::2] = s[1::2]  # every value appears twice, often with different labels
    cases["pairs_tied"] = (s, l)
    l = np.zeros(50, np.uint8)
    cases["all_normal"] = (rng.random(50).astype(np.float32), l)
    cases["all_anomalous"] = (rng.random(50).astype(np.float32), np.ones(50, np.uint8))
    l = (rng.random(40) < 0.5).astype(np.uint8)
    cases["constant_scores"] = (np.full(40, 0.25, np.float32), l)
    l = np.zeros(500, np.uint8)
    l[rng.integers(500)] = 1
    cases["single_anomalous"] = (rng.random(500).astype(np.float32), l)
    cases["single_sample"] = (np.array([0.7], np.float32), np.array([1], np.uint8))
    l = (rng.random(300) < 0.3).astype(np.uint8)
    bits = 0x3F800000 + rng.integers(0, 64, 300) + 16 * l  # 1.0 + a few ulps
    cases["low_bits"] = (bits.astype(np.uint32).view(np.float32), l)
    l = (rng.random(200) < 0.5).astype(np.uint8)
    cases["perfect"] = (l.astype(np.float32) * 2 - 1 + rng.random(200).astype(np.float32) * 0.5, l)
    cases["inverted"] = (-(l.astype(np.float32) * 2 - 1 + rng.random(200).astype(np.float32) * 0.5), l)
    # Arbitrary range with signed zeros, which compare equal (a tie).
    l = (rng.random(400) < 0.4).astype(np.uint8)
    s = (rng.normal(size=400) * 3 + l).astype(np.float32)
    s[rng.integers(0, 400, 40)] = 0.0
    s[rng.integers(0, 400, 40)] = -0.0
    s[rng.integers(0, 400, 10)] = 3.0e7
    cases["wide_range_signed_zeros"] = (s, l)
    return cases


def blob_masks(rng, images, h, w, blobs):
    masks = np.zeros((images, h, w), bool)
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(images):
        for _ in range(blobs[i]):
            cy, cx = rng.integers(0, h), rng.integers(0, w)
            ry, rx = rng.uniform(1, h / 6), rng.uniform(1, w / 6)
            masks[i] |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    return masks


def smooth_maps(rng, masks, sigma, gain):
    noise = rng.random(masks.shape)
    maps = np.stack([scipy.ndimage.gaussian_filter(noise[i] + gain * masks[i], sigma) for i in range(len(masks))])
    return maps.astype(np.float32)


def pixel_cases(rng):
    cases = {}
    m = rng.random((3, 16, 16)) < 0.15
    cases["pix_random_small"] = ((rng.random((3, 16, 16)) + 0.3 * m).astype(np.float32), m)

    masks = blob_masks(rng, 4, 48, 48, [3, 0, 5, 2])
    # Components that touch only diagonally (one component under 8-connectivity),
    # single-pixel components and a component on the border.
    masks[0, 40:44, 2:6] = True
    masks[0, 44:47, 6:9] = True
    masks[3, 0, 47] = True
    masks[3, 20, 20] = True
    masks[3, 21, 21] = True
    masks[3, 30, 10] = True
    cases["pix_components"] = (smooth_maps(rng, masks, 2.0, 0.8), masks)

    masks = np.zeros((2, 32, 32), bool)
    masks[1, 17, 9] = True
    maps = smooth_maps(rng, masks, 1.0, 0.5)
    cases["pix_single_defect_pixel"] = (maps, masks)

    masks = np.zeros((2, 24, 24), bool)
    cases["pix_all_normal"] = (rng.random((2, 24, 24)).astype(np.float32), masks)
    cases["pix_all_anomalous"] = (rng.random((2, 8, 8)).astype(np.float32), np.ones((2, 8, 8), bool))

    masks = blob_masks(rng, 2, 20, 20, [2, 1])
    cases["pix_constant"] = (np.full((2, 20, 20), 0.5, np.float32), masks)

    masks = blob_masks(rng, 3, 32, 32, [2, 3, 1])
    maps = smooth_maps(rng, masks, 1.5, 0.6)
    cases["pix_ties"] = ((np.round(maps * 8) / 8).astype(np.float32), masks)

    # Summed over four layers (range [0, 4]) with a negative offset on one image.
    masks = blob_masks(rng, 3, 40, 40, [2, 4, 1])
    maps = sum(smooth_maps(rng, masks, 4.0, 0.5) for _ in range(4))
    maps[2] -= 1.5
    cases["pix_range"] = (maps.astype(np.float32), masks)
    return cases


def main():
    rng = np.random.default_rng(SEED)
    tensors = {}
    reference = {
        "meta": {
            "script": "tools/make_metric_fixtures.py",
            "command": "python3 tools/make_metric_fixtures.py",
            "seed": SEED,
            "fpr_limit": FPR_LIMIT,
            "versions": {
                "python": sys.version.split()[0],
                "numpy": np.__version__,
                "scipy": scipy.__version__,
                "scikit-learn": sklearn.__version__,
                "scikit-image": skimage.__version__,
            },
            "undefined_reasons": UNDEFINED,
        },
        "binary": [],
        "pixel": [],
        "generated": [],
    }
    for name, (scores, labels) in binary_cases(rng).items():
        tensors[f"{name}/scores"] = np.ascontiguousarray(scores, np.float32)
        tensors[f"{name}/labels"] = np.ascontiguousarray(labels, np.uint8)
        reference["binary"].append({"name": name, "n": int(len(scores)), "expected": binary_expected(labels, scores)})
        print(name, reference["binary"][-1]["expected"])
    for name, (maps, masks) in pixel_cases(rng).items():
        tensors[f"{name}/maps"] = np.ascontiguousarray(maps, np.float32)
        tensors[f"{name}/masks"] = np.ascontiguousarray(masks, np.uint8)
        entry = {"name": name, "shape": list(maps.shape), "expected": pixel_expected(maps, masks.astype(np.uint8))}
        reference["pixel"].append(entry)
        print(name, {k: v for k, v in entry["expected"].items() if k != "component_sizes"})
    params = {"images": 16, "size": 256, "seed": 7}
    maps, masks = low_bits_case(**params)
    entry = {"name": "pix_low_bits_1m", "generator": "low_bits_case", "params": params,
             "expected": pixel_expected(maps, masks)}
    entry["expected"]["first_bits"] = [int(b) for b in maps.ravel()[:4].view(np.uint32)]
    reference["generated"].append(entry)
    print(entry["name"], {k: v for k, v in entry["expected"].items() if k != "component_sizes"})

    os.makedirs(OUT_DIR, exist_ok=True)
    safetensors.numpy.save_file(tensors, os.path.join(OUT_DIR, "inputs.safetensors"),
                                metadata={"made_by": f"tools/make_metric_fixtures.py, seed {SEED}"})
    with open(os.path.join(OUT_DIR, "reference.json"), "w") as f:
        json.dump(reference, f, indent=1)
        f.write("\n")
    for fname in ("inputs.safetensors", "reference.json"):
        print(fname, os.path.getsize(os.path.join(OUT_DIR, fname)), "bytes")


if __name__ == "__main__":
    if not math.isclose(FPR_LIMIT, 0.3):
        raise SystemExit("FPR_LIMIT must stay 0.3 (METHOD.md D)")
    main()
