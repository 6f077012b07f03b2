#!/usr/bin/env python3
"""PyTorch reference for one TokenCLIP training step, timed (issue 7's benchmark).

The same step as `tokenclip bench train --model M`: batch 8, M = 4 subspaces, 12 context tokens,
8 deep prompts x 4, the ViT-L/14@336 text tower (random weights from
`tools/make_clip_fixtures.py --full ViT-L-14-336`), random unit features at 518 px (N = 1369,
D = 768, one feature layer), masks on every other image; text encoder forward with the prompts,
the loss of tools/make_train_loss_fixtures.py (AnomalyCLIP's focal/Dice/CE on the token-wise
map, plus orthogonality; plan held constant, solved by tools/tokenclip_reference.py), backward,
torch.optim.Adam(lr 1e-3, betas (0.5, 0.999)).

The text encoder is batched over the M prompts of each state and uses
F.scaled_dot_product_attention(is_causal=True). `--tokens eot` encodes each prompt only up to its
EOT token (what tokenclip does: exact, since the tower is causal); `--tokens padded` runs all 77
positions as AnomalyCLIP does. Prints the median step time and its split.

    python3 tools/bench_torch_train.py --checkpoint /tmp/full-l14/openclip.safetensors --tokens eot
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_train_loss_fixtures as fx  # noqa: E402
import tokenclip_reference as ref  # noqa: E402


def encode(model, tokens, ctx, deep, n_ctx, truncate):
    """[M, D] normalised embeddings of one state's M prompts (contexts ctx [M, n_ctx, W])."""
    eot = int(tokens.argmax())
    length = eot + 1 if truncate else tokens.shape[0]
    emb = model.token_embedding.weight[tokens[:length]]
    m = ctx.shape[0]
    x = torch.cat([emb[:1].expand(m, 1, -1), ctx, emb[1 + n_ctx:].expand(m, -1, -1)], dim=1)
    h = x + model.positional_embedding[:length]
    n_deep = deep.shape[1]
    for i, block in enumerate(model.transformer.resblocks):
        if 1 <= i <= deep.shape[0]:
            h = torch.cat([h[:, :1], deep[i - 1].expand(m, -1, -1), h[:, 1 + n_deep:]], dim=1)
        heads = block.attn.num_heads
        a = F.layer_norm(h, h.shape[-1:], block.ln_1.weight, block.ln_1.bias, block.ln_1.eps)
        q, k, v = F.linear(a, block.attn.in_proj_weight, block.attn.in_proj_bias).chunk(3, dim=-1)
        split = lambda t: t.reshape(m, length, heads, -1).transpose(1, 2)  # noqa: E731
        o = F.scaled_dot_product_attention(split(q), split(k), split(v), is_causal=True)
        o = o.transpose(1, 2).reshape(m, length, -1)
        h = h + F.linear(o, block.attn.out_proj.weight, block.attn.out_proj.bias)
        h = h + fx_mlp(block, h)
    h = F.layer_norm(h[:, eot], h.shape[-1:], model.ln_final.weight, model.ln_final.bias, model.ln_final.eps)
    return F.normalize(h @ model.text_projection, dim=-1)


def fx_mlp(block, x):
    return ref._mlp(block, x)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default="/tmp/full-l14/openclip.safetensors")
    ap.add_argument("--tokens", choices=["eot", "padded"], default="eot")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    import open_clip
    from safetensors.torch import load_file

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = open_clip.create_model("ViT-L-14-336", pretrained=None)
    model.load_state_dict(load_file(a.checkpoint), strict=False)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    tok = open_clip.get_tokenizer("ViT-L-14-336")
    m, n_ctx, w, size, grid, d, batch = 4, 12, model.token_embedding.weight.shape[1], 518, 37, 768, 8
    fx.SIZE = size
    texts = ref.prompt_texts(n_ctx)
    tokens = [tok([t])[0] for t in texts]
    params = [(0.02 * torch.randn(m, n_ctx, w)).requires_grad_(True) for _ in range(2)]
    deep = (0.02 * torch.randn(8, 4, w)).requires_grad_(True)
    opt = torch.optim.Adam(params + [deep], lr=1e-3, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(7)
    patches = [[fx.unit(gen, grid * grid, d) for _ in range(batch)]]
    globals_ = fx.unit(gen, batch, d)
    labels = torch.tensor([b % 2 for b in range(batch)])
    masks = []
    for b in range(batch):
        if b % 2:
            mk = torch.zeros(size, size)
            mk[: size // 4, : size // 4] = 1.0
            masks.append(mk)
        else:
            masks.append(torch.zeros(size, size))
    cfg = {"mix": "embeddings", "lambda_local": 4.0, "lambda_orth": 0.1, "top_k": 2}

    def step():
        t0 = time.perf_counter()
        t_n = encode(model, tokens[0], params[0], deep, n_ctx, a.tokens == "eot")
        t_a = encode(model, tokens[1], params[1], deep, n_ctx, a.tokens == "eot")
        t1 = time.perf_counter()
        with torch.no_grad():
            weights = [[fx.solve_weights(patches[0][b], t_n, t_a, cfg) for b in range(batch)]]
        total = fx.tokenclip(t_n, t_a, patches, weights, globals_, labels, masks, cfg)[0]
        t2 = time.perf_counter()
        opt.zero_grad()
        total.backward()
        opt.step()
        t3 = time.perf_counter()
        return t3 - t0, t1 - t0, t2 - t1, t3 - t2

    step()
    runs = sorted(step() for _ in range(a.reps))
    med = runs[len(runs) // 2]
    print(f"torch {torch.__version__}, {a.threads} threads, tokens {a.tokens}: step {med[0]:.3f} s "
          f"(text forward {med[1]:.3f}, loss {med[2]:.3f}, backward + Adam {med[3]:.3f})")
    print(json.dumps({"bench": "torch_train_step", "tokens": a.tokens, "threads": a.threads,
                      "step_s": med[0], "text_forward_s": med[1], "loss_s": med[2], "backward_adam_s": med[3]}))


if __name__ == "__main__":
    main()
