#!/usr/bin/env python3
"""Training-loss fixtures for src/train/loss (tests/train_loss.rs), from PyTorch autograd.

Two independent references on the same random cached features:
  anomalyclip(...)  AnomalyCLIP's own training loss, written from zqhang/AnomalyCLIP train.py
                    (l.64-66 mask threshold, l.80 text normalisation, l.82-84 image CE, l.89-102
                    per-layer focal + two Dice, `lam`) with loss.py's FocalLoss (gamma 2, smooth
                    1e-5, alpha None) and BinaryDiceLoss (smooth 1), compute_similarity and
                    get_similarity_map (AnomalyCLIP_lib/model_load.py l.222-236): M = 1 only.
  tokenclip(...)    our loss (shared/spec/METHOD.md A5 + B8): the token-wise map of
                    tools/tokenclip_reference.py (token_probabilities, sinkhorn, top_k_renorm) with
                    the plan held constant, CE on normalize(mean_m t^m), lambda_local times the mean
                    over layers of the pixel terms, lambda_orth * L_orth; images without a mask add
                    no pixel terms.
Gradients are d total / d x for x the raw text encoder outputs (train.py normalises them, l.80);
the inputs x are unit vectors, so the values equal the loss at t = x.

Deviations from a literal transcription, all value-preserving up to rounding:
  * the cached patch and global features are stored L2-normalised and not re-normalised here
    (train.py l.74, l.91 do it again; at f64 that would move them by ~1e-8, the Rust side gets the
    stored rows);
  * FocalLoss builds its one-hot as torch.FloatTensor (f32) whatever the logits' dtype; here it
    is built in the logits' dtype, so the f64 run uses 1 - 1e-5 exactly (identical at f32);
  * tau = f32(0.07) and lambda_orth = f32(0.1) also at f64, as the Rust config stores f32.

Cases (images 0..3: 0 normal (zero mask), 1 and 2 anomalous with masks, 3 normal (zero mask)):
  a1   M=1, layer [3], images 0-2, AnomalyCLIP at HEAD 76b83e1 (lam = 4, one layer)
  a4   M=1, layers [0,1,2,3], images 0-2, AnomalyCLIP at ff7ca47 (no lam, sum over four layers)
       (our lambda_local = 4 with the mean over four layers is the same loss)
  t4e  M=4, layers [0,3], images 0-3 with image 2 given no mask, mix embeddings, K=2
  t4p  as t4e with mix probabilities, K=3
For a1/a4 the tokenclip() reference is also evaluated with both mixes and must agree with
anomalyclip() (asserted here: METHOD.md B9 for the loss).

Output tests/fixtures/train_loss/expected.safetensors:
  img.{b}.patch.{l} [N,D] f32, img.{b}.global [D] f32, img.{b}.mask [S,S] f32 (0/1), labels [4]
  m1.t_n, m1.t_a [1,D], m4.t_n, m4.t_a [4,D] (f32 unit rows)
  {case}.weights.{b}.{l} [N,M] f32 (M=4 cases, masked images; the plan is solved in f32)
  {case}.{f32|f64}.terms [7]: total, ce, focal, dice_abnormal, dice_normal, orth, mean_offdiag_cos
                              (pixel terms as means over layers), stored as f64
  {case}.{f32|f64}.d_t_n, .d_t_a [M,D] f64
Metadata: the case configs (JSON), seed, versions, command.

Command: python3 tools/make_train_loss_fixtures.py
"""
import json
import os
import sys

import numpy as np
import safetensors.torch
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokenclip_reference as ref  # noqa: E402

SEED = 20261201
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "train_loss")
D, GRID, SIZE, LAYERS, IMAGES = 24, 5, 17, 4, 4
LABELS = [0, 1, 1, 0]
TAU = float(np.float32(0.07))
LAMBDA_ORTH = float(np.float32(0.1))
TRANSPORT = dict(epsilon=0.1, sinkhorn_iters=100, sinkhorn_tol=1e-2)
CASES = {
    "a1": dict(m=1, layers=[3], images=[0, 1, 2], masked=[0, 1, 2], reference="anomalyclip", lam=4.0,
               lambda_local=4.0, lambda_orth=LAMBDA_ORTH, top_k=2, mix="embeddings"),
    "a4": dict(m=1, layers=[0, 1, 2, 3], images=[0, 1, 2], masked=[0, 1, 2], reference="anomalyclip", lam=1.0,
               lambda_local=4.0, lambda_orth=LAMBDA_ORTH, top_k=2, mix="embeddings"),
    "t4e": dict(m=4, layers=[0, 3], images=[0, 1, 2, 3], masked=[0, 1, 3], reference="tokenclip",
                lambda_local=4.0, lambda_orth=LAMBDA_ORTH, top_k=2, mix="embeddings"),
    "t4p": dict(m=4, layers=[0, 3], images=[0, 1, 2, 3], masked=[0, 1, 3], reference="tokenclip",
                lambda_local=4.0, lambda_orth=LAMBDA_ORTH, top_k=3, mix="probabilities"),
}


# ----------------------------------------------------------------------------------- loss.py

def focal_loss(logit, target, gamma=2.0, smooth=1e-5):
    """loss.py FocalLoss.forward, apply_nonlin None, alpha None (all ones), size_average True."""
    num_class = logit.shape[1]
    logit = logit.reshape(logit.size(0), num_class, -1).permute(0, 2, 1).reshape(-1, num_class)
    idx = target.reshape(-1, 1).long()
    one_hot = torch.zeros(idx.size(0), num_class, dtype=logit.dtype).scatter_(1, idx, 1)
    one_hot = torch.clamp(one_hot, smooth / (num_class - 1), 1.0 - smooth)
    pt = (one_hot * logit).sum(1) + smooth
    return (-1 * torch.pow(1 - pt, gamma) * pt.log()).mean()


def dice_loss(inp, targets):
    """loss.py BinaryDiceLoss.forward."""
    n = targets.size()[0]
    x, y = inp.reshape(n, -1), targets.reshape(n, -1)
    eff = (2 * (x * y).sum(1) + 1) / (x.sum(1) + y.sum(1) + 1)
    return 1 - eff.sum() / n


def pixel_terms(similarity_map, gt):
    """train.py l.98-100 for one layer: similarity_map [B, 2, S, S] (normal, abnormal)."""
    return (focal_loss(similarity_map, gt), dice_loss(similarity_map[:, 1], gt),
            dice_loss(similarity_map[:, 0], 1 - gt))


# ----------------------------------------------------------------------------------- references

def anomalyclip(x_n, x_a, patches, globals_, labels, gt, lam):
    """AnomalyCLIP train.py, one step's loss. x_n, x_a [1, D] raw text outputs; patches: per layer
    [B, N, D]; globals_ [B, D]; gt [B, S, S] thresholded. Returns (total, terms per layer)."""
    text = torch.stack([x_n, x_a], dim=1)  # [1, 2, D]: chunk(normal; abnormal) stacked, l.79
    text = text / text.norm(dim=-1, keepdim=True)  # l.80
    probs = (globals_.unsqueeze(1) @ text.permute(0, 2, 1))[:, 0, ...] / TAU  # l.82-83
    image_loss = F.cross_entropy(probs.squeeze(), labels)  # l.84
    loss, per_layer = 0, []
    for p in patches:
        cls = torch.zeros(p.shape[0], 1, p.shape[2], dtype=p.dtype)  # the dropped class token
        feats = torch.cat([cls, p], dim=1)
        # compute_similarity: softmax over (normal, abnormal) of <P, t> / 0.07
        sim = ((feats.unsqueeze(2) * text[0].reshape(1, 1, 2, -1)).sum(-1) / TAU).softmax(-1)
        # get_similarity_map(sim[:, 1:, :], S).permute(0, 3, 1, 2)
        sm = sim[:, 1:, :]
        side = int(sm.shape[1] ** 0.5)
        sm = sm.reshape(sm.shape[0], side, side, -1).permute(0, 3, 1, 2)
        sm = F.interpolate(sm, (SIZE, SIZE), mode="bilinear", align_corners=False)
        terms = pixel_terms(sm, gt)
        per_layer.append(terms)
        loss = loss + terms[0] + terms[1] + terms[2]
    return lam * loss + image_loss, image_loss, per_layer


def tokenclip(x_n, x_a, patches, weights, globals_, labels, masks, cfg):
    """Our loss. patches[l][b] [N, D]; weights[l][b] [N, M] (constant, None where unmasked);
    masks[b]: [S, S] or None. Returns (total, ce, focal, dice_a, dice_n, orth, mean cosine)."""
    t_n, t_a = F.normalize(x_n, dim=-1), F.normalize(x_a, dim=-1)
    m = t_n.shape[0]
    bar_n, bar_a = F.normalize(t_n.mean(dim=0), dim=-1), F.normalize(t_a.mean(dim=0), dim=-1)
    logits = torch.stack([globals_ @ bar_n, globals_ @ bar_a], dim=-1) / TAU
    ce = F.cross_entropy(logits, labels)
    masked = [b for b, mk in enumerate(masks) if mk is not None]
    zero = torch.zeros((), dtype=x_n.dtype)
    focal, dice_a, dice_n = zero, zero, zero
    if masked:
        gt = torch.stack([masks[b] for b in masked])
        for pl, wl in zip(patches, weights):
            maps = []
            for b in masked:
                p_n, p_a = ref.token_probabilities(pl[b], t_n, t_a, wl[b], cfg["mix"], TAU)
                g = int(round(p_n.shape[0] ** 0.5))
                two = torch.stack([p_n, p_a]).reshape(1, 2, g, g)
                maps.append(F.interpolate(two, size=(SIZE, SIZE), mode="bilinear", align_corners=False)[0])
            f, da, dn = pixel_terms(torch.stack(maps), gt)
            focal, dice_a, dice_n = focal + f, dice_a + da, dice_n + dn
        nl = len(patches)
        focal, dice_a, dice_n = focal / nl, dice_a / nl, dice_n / nl
    if m > 1:
        off = ~torch.eye(m, dtype=torch.bool)
        gn, ga = (t_n @ t_n.t())[off], (t_a @ t_a.t())[off]
        orth = (gn ** 2 + ga ** 2).mean()
        cos = torch.cat([gn, ga]).mean()
    else:
        orth, cos = zero, zero
    total = ce + cfg["lambda_local"] * (focal + dice_a + dice_n) + cfg["lambda_orth"] * orth
    return total, ce, focal, dice_a, dice_n, orth, cos


# ----------------------------------------------------------------------------------- data

def unit(gen, *shape):
    return F.normalize(torch.randn(*shape, generator=gen), dim=-1)


def make_mask(gen, anomalous):
    """A random blob: a bilinearly resized coarse random field thresholded at 0.5, plus a rectangle."""
    if not anomalous:
        return torch.zeros(SIZE, SIZE)
    coarse = torch.rand(1, 1, 4, 4, generator=gen)
    field = F.interpolate(coarse, size=(SIZE, SIZE), mode="bilinear", align_corners=False)[0, 0]
    mask = (field > 0.6).float()
    y, x = torch.randint(0, SIZE - 5, (2,), generator=gen).tolist()
    mask[y:y + 5, x:x + 4] = 1.0
    return mask


def solve_weights(patch, t_n, t_a, cfg):
    """The constant plan of one map, as tools/tokenclip_reference.py's transport_and_map (f32)."""
    s = F.normalize(t_n + t_a, dim=-1)
    plan, _ = ref.sinkhorn(1.0 - patch @ s.t(), TRANSPORT["epsilon"], TRANSPORT["sinkhorn_iters"],
                           TRANSPORT["sinkhorn_tol"])
    return ref.top_k_renorm(plan, cfg["top_k"])


def run_case(name, cfg, data, dtype):
    """Returns (terms [7], d_t_n, d_t_a, weights) of one case at one dtype."""
    t_n32, t_a32 = data[f"m{cfg['m']}.t_n"], data[f"m{cfg['m']}.t_a"]
    x_n = t_n32.to(dtype).clone().requires_grad_(True)
    x_a = t_a32.to(dtype).clone().requires_grad_(True)
    imgs = cfg["images"]
    patches = [[data[f"img.{b}.patch.{l}"].to(dtype) for b in imgs] for l in cfg["layers"]]
    globals_ = torch.stack([data[f"img.{b}.global"] for b in imgs]).to(dtype)
    labels = torch.tensor([LABELS[b] for b in imgs])
    masks = [data[f"img.{b}.mask"].to(dtype) if b in cfg["masked"] else None for b in imgs]
    weights = [[solve_weights(data[f"img.{b}.patch.{l}"], t_n32, t_a32, cfg) if b in cfg["masked"] else None
                for b in imgs] for l in cfg["layers"]]
    w_dt = [[None if w is None else w.to(dtype) for w in wl] for wl in weights]
    ours = tokenclip(x_n, x_a, patches, w_dt, globals_, labels, masks, cfg)
    if cfg["reference"] == "anomalyclip":
        gt = torch.stack([mk for mk in masks])
        gt = torch.where(gt > 0.5, torch.ones_like(gt), torch.zeros_like(gt))  # train.py l.65-66
        theirs = anomalyclip(x_n, x_a, [torch.stack(pl) for pl in patches], globals_, labels, gt, cfg["lam"])
        total, ce, per_layer = theirs
        nl = len(per_layer)
        focal, dice_a, dice_n = (sum(t[i] for t in per_layer) / nl for i in range(3))
        zero = torch.zeros((), dtype=dtype)
        terms = [total, ce, focal, dice_a, dice_n, zero, zero]
        for mix in ("embeddings", "probabilities"):  # METHOD.md B9 on the loss
            o = tokenclip(x_n, x_a, patches, w_dt, globals_, labels, masks, dict(cfg, mix=mix))
            tol = 1e-5 if dtype == torch.float32 else 1e-12
            for a, b in zip((v.detach() for v in o), (v.detach() for v in terms)):
                assert abs(float(a) - float(b)) <= tol * max(1.0, abs(float(b))), (name, mix, float(a), float(b))
    else:
        terms = list(ours)
    gx_n, gx_a = torch.autograd.grad(terms[0], [x_n, x_a])
    vals = torch.tensor([float(t) for t in terms], dtype=torch.float64)
    return vals, gx_n.double(), gx_a.double(), weights


def main():
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    data = {}
    for b in range(IMAGES):
        for l in range(LAYERS):
            # a shared direction per image makes the tokens correlated, as real patches are
            base = torch.randn(D, generator=gen)
            data[f"img.{b}.patch.{l}"] = F.normalize(0.7 * base + torch.randn(GRID * GRID, D, generator=gen), dim=-1)
        data[f"img.{b}.global"] = unit(gen, D)
        data[f"img.{b}.mask"] = make_mask(gen, LABELS[b] == 1)
    data["labels"] = torch.tensor(LABELS, dtype=torch.float32)
    for m in (1, 4):
        data[f"m{m}.t_n"], data[f"m{m}.t_a"] = unit(gen, m, D), unit(gen, m, D)
    out = dict(data)
    for name, cfg in CASES.items():
        for dt_name, dtype in (("f32", torch.float32), ("f64", torch.float64)):
            terms, gn, ga, weights = run_case(name, cfg, data, dtype)
            out[f"{name}.{dt_name}.terms"] = terms
            out[f"{name}.{dt_name}.d_t_n"], out[f"{name}.{dt_name}.d_t_a"] = gn, ga
            print(f"{name} {dt_name}: " + " ".join(f"{float(v):.6g}" for v in terms))
        if cfg["m"] > 1:
            for li, l in enumerate(cfg["layers"]):
                for bi, b in enumerate(cfg["images"]):
                    if weights[li][bi] is not None:
                        out[f"{name}.weights.{b}.{l}"] = weights[li][bi]
    meta = {
        "cases": json.dumps(CASES, sort_keys=True),
        "shapes": json.dumps(dict(d=D, grid=GRID, size=SIZE, layers=LAYERS, images=IMAGES)),
        "transport": json.dumps(TRANSPORT, sort_keys=True),
        "seed": str(SEED),
        "versions": json.dumps({"torch": torch.__version__, "numpy": np.__version__}),
        "command": "python3 tools/make_train_loss_fixtures.py",
    }
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "expected.safetensors")
    tensors = {k: v.contiguous() for k, v in sorted(out.items())}
    raw = safetensors.torch.save(tensors, metadata=meta)
    # safetensors writes metadata keys in hash order; rewrite the header sorted so reruns are
    # byte-identical.
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    assert len(text) <= n
    with open(path, "wb") as f:
        f.write(raw[:8] + text + b" " * (n - len(text)) + raw[8 + n:])
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
