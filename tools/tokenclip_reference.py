"""Independent PyTorch reference of the detection method in shared/spec/METHOD.md (A1-A4, B, C).

Float32 torch on top of an open_clip `CLIP` model object (its modules are only read for their
parameters: the block loops are written out here so that every step of the method is visible).
Used by tools/make_detect_fixtures.py (parity fixtures for the Rust port) and
tools/bench_torch_detect.py (the PyTorch timing baseline).

Main entry points:
  encode_image_dpam(model, pixels, dpam_start, feature_layers) -> ({l: P_l [N,D]}, f [D])
  encode_text_prompts(model, ctx_normal, ctx_abnormal, deep)   -> (t_n [M,D], t_a [M,D])
  ensemble_text(model, tokenizer, class_name)                  -> (t_n [1,D], t_a [1,D])
  sinkhorn(cost, eps, max_iters, tol)                          -> (plan [N,M], iterations)
  top_k_renorm(plan, K)                                        -> weights [N,M]
  detect(model, pixels, text_n, text_a, cfg)                   -> dict of intermediates/outputs
  anomalyclip_detect(model, pixels, text_n, text_a, cfg)       -> plain AnomalyCLIP (A4), M = 1
"""
import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# METHOD.md C: copied as data from zqhang/AnomalyCLIP, prompt_ensemble.py
# (encode_text_with_prompt_ensemble).
STATES_NORMAL = ["{}", "flawless {}", "perfect {}", "unblemished {}", "{} without flaw", "{} without defect",
                 "{} without damage"]
STATES_ABNORMAL = ["damaged {}", "broken {}", "{} with flaw", "{} with defect", "{} with damage"]
TEMPLATES = [
    "a bad photo of a {}.", "a low resolution photo of the {}.", "a bad photo of the {}.",
    "a cropped photo of the {}.", "a bright photo of a {}.", "a dark photo of the {}.", "a photo of my {}.",
    "a photo of the cool {}.", "a close-up photo of a {}.", "a black and white photo of the {}.",
    "a bright photo of the {}.", "a cropped photo of a {}.", "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.", "a photo of the {}.", "a good photo of the {}.", "a photo of one {}.",
    "a close-up photo of the {}.", "a photo of a {}.", "a low resolution photo of a {}.", "a photo of a large {}.",
    "a blurry photo of a {}.", "a jpeg corrupted photo of the {}.", "a good photo of a {}.",
    "a photo of the small {}.", "a photo of the large {}.", "a black and white photo of a {}.",
    "a dark photo of a {}.", "a photo of a cool {}.", "a photo of a small {}.", "there is a {} in the scene.",
    "there is the {} in the scene.", "this is a {} in the scene.", "this is the {} in the scene.",
    "this is one {} in the scene.",
]
assert len(TEMPLATES) == 35


def prompt_texts(n_ctx):
    """The two learnable-prompt sentences of METHOD.md A3 (placeholders 'X')."""
    xs = " ".join(["X"] * n_ctx)
    return f"{xs} object.", f"{xs} damaged object."


def ensemble_sentences(class_name="object"):
    """(normal sentences, abnormal sentences): every state x template, in AnomalyCLIP's order."""
    out = []
    for states in (STATES_NORMAL, STATES_ABNORMAL):
        out.append([t.format(s.format(class_name)) for s in states for t in TEMPLATES])
    return out


def preprocess(path, size):
    """METHOD.md A1: RGB, squash to size x size with PIL bicubic, /255, CLIP mean/std, CHW f32."""
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert("RGB").resize((size, size), Image.BICUBIC)
        x = torch.from_numpy(np.asarray(im, dtype=np.float32).copy()) / 255.0
    x = (x - torch.tensor(CLIP_MEAN)) / torch.tensor(CLIP_STD)
    return x.permute(2, 0, 1).contiguous()


# ----------------------------------------------------------------------------------- blocks

def _heads(x, n):
    """[L, W] -> [n, L, W/n], the head split of nn.MultiheadAttention."""
    return x.reshape(x.shape[0], n, -1).transpose(0, 1)


def _merge(x):
    """[n, L, dh] -> [L, n*dh]."""
    return x.transpose(0, 1).reshape(x.shape[1], -1)


def _attend(q, k, v, mask=None, fast=False):
    """Per-head softmax(q k^T / sqrt(d_h) + mask) v, q/k/v [n, L, dh]."""
    if fast:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    s = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s + mask
    return torch.softmax(s, dim=-1) @ v


def _qkv(block, a):
    """q, k, v (each [L, W]) from the block's own in-proj."""
    return F.linear(a, block.attn.in_proj_weight, block.attn.in_proj_bias).chunk(3, dim=-1)


def _out(block, x):
    return F.linear(x, block.attn.out_proj.weight, block.attn.out_proj.bias)


def _mlp(block, x):
    """Linear(W->4W), QuickGELU, Linear(4W->W) on LN2(x)."""
    x = F.layer_norm(x, x.shape[-1:], block.ln_2.weight, block.ln_2.bias, block.ln_2.eps)
    x = F.linear(x, block.mlp.c_fc.weight, block.mlp.c_fc.bias)
    x = x * torch.sigmoid(1.702 * x)
    return F.linear(x, block.mlp.c_proj.weight, block.mlp.c_proj.bias)


def _ln1(block, x):
    return F.layer_norm(x, x.shape[-1:], block.ln_1.weight, block.ln_1.bias, block.ln_1.eps)


def block_forward(block, h, mask=None, fast=False):
    """Standard CLIP block on one sequence h [L, W]: h += attn(LN1 h); h += MLP(LN2 h)."""
    n = block.attn.num_heads
    q, k, v = (_heads(t, n) for t in _qkv(block, _ln1(block, h)))
    h = h + _out(block, _merge(_attend(q, k, v, mask, fast)))
    return h + _mlp(block, h)


def dpam_block_forward(block, h, z, fast=False):
    """METHOD.md A2, one DPAM layer: q, k, v from LN1(h); h gets the usual q-k attention and MLP;
    z += out_proj(softmax(v v^T / sqrt(d_h)) v) with the same v, no MLP on z."""
    n = block.attn.num_heads
    q, k, v = (_heads(t, n) for t in _qkv(block, _ln1(block, h)))
    h = h + _out(block, _merge(_attend(q, k, v, None, fast)))
    h = h + _mlp(block, h)
    z = z + _out(block, _merge(_attend(v, v, v, None, fast)))
    return h, z


# ----------------------------------------------------------------------------------- vision

def resized_positional(visual, grid):
    """Class position kept; the grid part resized bilinearly (align_corners=False) to grid x grid."""
    pos = visual.positional_embedding
    side = int(round((pos.shape[0] - 1) ** 0.5))
    if side == grid:
        return pos
    g = pos[1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
    g = F.interpolate(g, size=(grid, grid), mode="bilinear", align_corners=False)
    return torch.cat([pos[:1], g.permute(0, 2, 3, 1).reshape(grid * grid, -1)], dim=0)


def vision_embed(visual, pixels):
    """Patch conv, class token, positional embedding (resized if needed), ln_pre -> [1+N, W]."""
    x = F.conv2d(pixels[None], visual.conv1.weight, stride=visual.conv1.stride)[0]  # [W, g, g]
    grid = x.shape[-1]
    x = x.reshape(x.shape[0], -1).t()
    x = torch.cat([visual.class_embedding[None], x], dim=0) + resized_positional(visual, grid)
    return F.layer_norm(x, x.shape[-1:], visual.ln_pre.weight, visual.ln_pre.bias, visual.ln_pre.eps)


def vision_streams(model, pixels, dpam_start, feature_layers, fast=False):
    """Runs the vision tower with the DPAM second stream.
    Returns ({l: tokens [1+N, W] of layer l: z_l if l >= dpam_start else h_l}, h_L)."""
    visual = model.visual
    h, z, taken = vision_embed(visual, pixels), None, {}
    for l, block in enumerate(visual.transformer.resblocks, start=1):
        if l < dpam_start:
            h = block_forward(block, h, fast=fast)
        else:
            if z is None:
                z = h  # z starts as the input of layer dpam_start
            h, z = dpam_block_forward(block, h, z, fast=fast)
        if l in feature_layers:
            taken[l] = z if l >= dpam_start else h
    return taken, h


def project_patches(visual, tokens):
    """P = normalize(ln_post(tokens[1:]) @ proj), class token dropped -> [N, D]."""
    x = F.layer_norm(tokens[1:], tokens.shape[-1:], visual.ln_post.weight, visual.ln_post.bias, visual.ln_post.eps)
    return F.normalize(x @ visual.proj, dim=-1)


def encode_image_dpam(model, pixels, dpam_start, feature_layers, fast=False):
    """pixels [3, S, S] -> ({l: P_l [N, D]} for l in feature_layers, f [D]).
    f = normalize(h_L[0] @ proj), WITHOUT ln_post (AnomalyCLIP's quirk, kept deliberately)."""
    taken, h = vision_streams(model, pixels, dpam_start, feature_layers, fast)
    patches = {l: project_patches(model.visual, taken[l]) for l in feature_layers}
    return patches, F.normalize(h[0] @ model.visual.proj, dim=-1)


# ----------------------------------------------------------------------------------- text

def causal_mask(n):
    return torch.full((n, n), float("-inf")).triu(1)


def encode_text_embeddings(model, x, eot, deep=None, n_deep=0):
    """Text tower on token embeddings x [P, 77, Wt] (positional embedding not yet added).
    Before layer i (0-indexed, 1 <= i <= len(deep)) positions 1..n_deep are overwritten by deep[i-1].
    Returns normalize(ln_final(h[eot]) @ text_projection) [P, D]."""
    h = x + model.positional_embedding
    mask = causal_mask(h.shape[1])
    n_deep_layers = 0 if deep is None else deep.shape[0]
    rows = []
    for p in range(h.shape[0]):
        hp = h[p]
        for i, block in enumerate(model.transformer.resblocks):
            if 1 <= i <= n_deep_layers:
                hp = torch.cat([hp[:1], deep[i - 1], hp[1 + n_deep:]], dim=0)
            hp = block_forward(block, hp, mask)
        rows.append(hp[eot[p]])
    h = torch.stack(rows)
    h = F.layer_norm(h, h.shape[-1:], model.ln_final.weight, model.ln_final.bias, model.ln_final.eps)
    return F.normalize(h @ model.text_projection, dim=-1)


def encode_text_prompts(model, ctx_normal, ctx_abnormal, deep, tokenizer=None):
    """METHOD.md A3/B1: M subspaces, each with its own contexts [M, n_ctx, Wt]; deep [L_deep, n_deep, Wt]
    shared. Returns (t_n [M, D], t_a [M, D]), L2-normalised."""
    import open_clip

    tokenizer = tokenizer or open_clip.get_tokenizer("ViT-B-16")
    n_ctx = ctx_normal.shape[1]
    n_deep = deep.shape[1] if deep is not None and deep.shape[0] > 0 else 0
    out = []
    for sentence, ctx in zip(prompt_texts(n_ctx), (ctx_normal, ctx_abnormal)):
        tokens = tokenizer([sentence])[0]
        emb = model.token_embedding.weight[tokens]  # [77, Wt]
        x = torch.stack([torch.cat([emb[:1], c, emb[1 + n_ctx:]], dim=0) for c in ctx])
        eot = [int(tokens.argmax())] * ctx.shape[0]
        out.append(encode_text_embeddings(model, x, eot, deep, n_deep))
    return out[0], out[1]


def ensemble_text(model, tokenizer, class_name="object"):
    """METHOD.md C: (t_n [1, D], t_a [1, D]) from the state x template ensemble, via model.encode_text."""
    out = []
    for sentences in ensemble_sentences(class_name):
        e = F.normalize(model.encode_text(tokenizer(sentences)), dim=-1)
        out.append(F.normalize(e.mean(dim=0), dim=-1)[None])
    return out[0], out[1]


# ----------------------------------------------------------------------------------- transport

def sinkhorn(cost, eps, max_iters, tol):
    """Log-domain entropic OT with uniform marginals (rows 1/N, columns 1/M), float32.
    Returns (plan [N, M], iterations run)."""
    cost = cost.float()
    n, m = cost.shape
    log_k = -cost / eps
    log_r, log_c = torch.zeros(n), torch.zeros(m)
    it = 0
    for it in range(1, max_iters + 1):
        new_r = -math.log(n) - torch.logsumexp(log_c[None, :] + log_k, dim=1)
        log_c = -math.log(m) - torch.logsumexp(new_r[:, None] + log_k, dim=0)
        change = (new_r.exp() - log_r.exp()).abs().mean()
        log_r = new_r
        if change < tol:
            break
    return (log_r[:, None] + log_k + log_c[None, :]).exp(), it


def top_k_renorm(plan, k):
    """Per row keep the k largest entries (ties: lower index wins), renormalise to sum 1
    (1/k each if the kept entries sum to 0). k is clamped to M."""
    n, m = plan.shape
    k = min(k, m)
    order = torch.argsort(-plan, dim=1, stable=True)[:, :k]
    keep = torch.zeros_like(plan).scatter(1, order, torch.gather(plan, 1, order))
    s = keep.sum(dim=1, keepdim=True)
    uniform = torch.zeros_like(plan).scatter(1, order, 1.0 / k)
    return torch.where(s > 0, keep / torch.where(s > 0, s, torch.ones_like(s)), uniform)


def _two_way(a, b, tau):
    """softmax([a, b] / tau) -> (p[0], p[1])."""
    p = torch.softmax(torch.stack([a, b], dim=-1) / tau, dim=-1)
    return p[..., 0], p[..., 1]


def token_probabilities(P, t_n, t_a, w, mix, tau):
    """METHOD.md B6: (p_n [N], p_a [N]) per token from weights w [N, M]."""
    if mix == "embeddings":
        tn, ta = F.normalize(w @ t_n, dim=-1), F.normalize(w @ t_a, dim=-1)
        return _two_way((P * tn).sum(-1), (P * ta).sum(-1), tau)
    if mix == "probabilities":
        _, pm = _two_way(P @ t_n.t(), P @ t_a.t(), tau)  # [N, M]
        p_a = (w * pm).sum(dim=1)
        return 1.0 - p_a, p_a
    raise ValueError(mix)


def layer_map(p_n, p_a, size):
    """Both channels to the g x g grid, bilinear (align_corners=False) to size x size,
    (p_a + 1 - p_n) / 2."""
    g = int(round(p_n.shape[0] ** 0.5))
    up = F.interpolate(torch.stack([p_n, p_a]).reshape(1, 2, g, g), size=(size, size), mode="bilinear",
                       align_corners=False)[0]
    return (up[1] + 1.0 - up[0]) / 2.0


def smooth(map_raw, sigma):
    """SciPy gaussian_filter with its defaults (truncate 4, mode reflect), as AnomalyCLIP's test.py."""
    return torch.from_numpy(gaussian_filter(map_raw.numpy(), sigma=sigma))


def global_score(f, t_n, t_a, tau):
    """A4/B7: softmax([<f, t̄_n>, <f, t̄_a>] / tau)[abnormal], t̄ = normalize(mean_m t^m)."""
    tn, ta = F.normalize(t_n.mean(dim=0), dim=-1), F.normalize(t_a.mean(dim=0), dim=-1)
    return _two_way(f @ tn, f @ ta, tau)[1]


def transport_and_map(patches, f, text_n, text_a, cfg, size):
    """Everything after the encoder (B3-B7 and A4) for one image; returns the result dict."""
    tau = cfg.get("temperature", 0.07)
    s = F.normalize(text_n + text_a, dim=-1)  # [M, D]
    out = {"global": f, "map_raw": torch.zeros(size, size)}
    for l, P in patches.items():
        cost = 1.0 - P @ s.t()
        plan, iters = sinkhorn(cost, cfg["epsilon"], cfg["sinkhorn_iters"], cfg["sinkhorn_tol"])
        w = top_k_renorm(plan, cfg["top_k"])
        p_n, p_a = token_probabilities(P, text_n, text_a, w, cfg["mix"], tau)
        out.update({f"patch.{l}": P, f"cost.{l}": cost, f"plan.{l}": plan, f"weights.{l}": w,
                    f"probs.{l}": p_a, f"iters.{l}": torch.tensor([float(iters)])})
        out["map_raw"] = out["map_raw"] + layer_map(p_n, p_a, size)
    out["map"] = smooth(out["map_raw"], cfg.get("sigma", 4.0))
    g = global_score(f, text_n, text_a, tau)
    score = g if cfg["score"] == "global" else 0.5 * (g + out["map"].max())
    out["score"] = score.reshape(1)
    return out


@torch.no_grad()
def detect(model, pixels, text_n, text_a, cfg, fast=False):
    """TokenCLIP on one image pixels [3, S, S] with subspace embeddings text_n/text_a [M, D].
    cfg: dpam_start, feature_layers, top_k, epsilon, sinkhorn_iters, sinkhorn_tol,
    mix ("embeddings" | "probabilities"), score ("global" | "fused"), temperature, sigma.
    Returns a dict: global, patch.l, cost.l, plan.l, weights.l, probs.l, iters.l, map_raw, map, score."""
    patches, f = encode_image_dpam(model, pixels, cfg["dpam_start"], cfg["feature_layers"], fast)
    return transport_and_map(patches, f, text_n, text_a, cfg, pixels.shape[-1])


@torch.no_grad()
def anomalyclip_detect(model, pixels, text_n, text_a, cfg):
    """Plain AnomalyCLIP (METHOD.md A4), text_n/text_a [1, D]: no transport.
    Returns {map_raw, map, score}."""
    tau, size = cfg.get("temperature", 0.07), pixels.shape[-1]
    patches, f = encode_image_dpam(model, pixels, cfg["dpam_start"], cfg["feature_layers"])
    text = torch.cat([text_n, text_a], dim=0)  # [2, D]
    map_raw = torch.zeros(size, size)
    for P in patches.values():
        p = torch.softmax(P @ text.t() / tau, dim=-1)
        map_raw = map_raw + layer_map(p[:, 0], p[:, 1], size)
    score = torch.softmax((f @ text.t()) / tau, dim=-1)[1]
    return {"map_raw": map_raw, "map": smooth(map_raw, cfg.get("sigma", 4.0)), "score": score.reshape(1)}
