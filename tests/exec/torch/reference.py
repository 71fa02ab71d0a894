#!/usr/bin/python3
"""PyTorch reference for eellm's early-exit GPT (tests/exec/parity_test.cpp).

Usage: reference.py DIR   — reads DIR/config.json, DIR/weights.safetensors, DIR/batch.safetensors,
writes DIR/results.safetensors with, per head h (exits in model order, then "final"):
  logits.h (B,T,Vp) and loss.h (1) of the initial weights, grad.NAME for every parameter of the
  weighted total loss, and adam_losses (steps, heads) over `steps` AdamW steps on the same batch.
Written independently of the C++ code from the model description (EE-LLM / Megatron semantics);
computes in float64 so that it is the exact side of the comparison.
"""
import json
import math
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F


def read_st(path):
    with open(path, "rb") as f:
        data = f.read()
    (hlen,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + hlen])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b, end = e["data_offsets"]
        arr = np.frombuffer(data[8 + hlen + b:8 + hlen + end], dtype="<f4").reshape(e["shape"])
        out[name] = arr.copy()
    return out


def write_st(path, tensors):
    header, off, blobs = {}, 0, []
    for name, arr in tensors.items():
        a = np.ascontiguousarray(arr, dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + a.nbytes]}
        off += a.nbytes
        blobs.append(a.tobytes())
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main(d):
    cfg = json.load(open(f"{d}/config.json"))
    torch.set_num_threads(int(cfg.get("threads", 1)))
    dt = torch.float64
    W = read_st(f"{d}/weights.safetensors")
    batch = read_st(f"{d}/batch.safetensors")
    P = {k: torch.tensor(v, dtype=dt, requires_grad=True) for k, v in W.items()}
    tokens = torch.tensor(batch["tokens"], dtype=torch.long)
    targets = torch.tensor(batch["targets"], dtype=torch.long)
    B, T = tokens.shape
    C, NH, G, HS, Fd, V, Vp = (cfg[k] for k in ("C", "NH", "G", "HS", "F", "V", "Vp"))
    Q, KV = NH * HS, G * HS
    ln = cfg["norm"] == "LayerNorm"
    eps = cfg["eps"]

    def norm(x, w, b):
        if ln:
            return F.layer_norm(x, (C,), P[w], P[b], eps)
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * P[w]

    def lin(x, w, b):
        y = x @ P[w].t()
        return y + P[b] if b in P else y

    def act(h):
        if cfg["swiglu"]:
            a, b = h.split(Fd, dim=-1)
            return F.silu(a) * b
        return F.gelu(h)  # exact erf form

    def rope(x):  # (B, T, H, HS), rotate-half form
        half = HS // 2
        inv = 1.0 / (cfg["rope_base"] ** (torch.arange(0, HS, 2, dtype=dt) / HS))
        ang = torch.arange(T, dtype=dt)[:, None] * inv[None, :]
        cos, sin = ang.cos()[None, :, None, :], ang.sin()[None, :, None, :]
        x1, x2 = x[..., :half], x[..., half:]
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)

    def layer(x, pre):
        h = norm(x, pre + "ln1_w", pre + "ln1_b")
        qkv = lin(h, pre + "qkv_w", pre + "qkv_b")
        q = qkv[..., :Q].reshape(B, T, NH, HS)
        k = qkv[..., Q:Q + KV].reshape(B, T, G, HS)
        v = qkv[..., Q + KV:].reshape(B, T, G, HS)
        if cfg["rope"]:
            q, k = rope(q), rope(k)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        k = k.repeat_interleave(NH // G, dim=1)
        v = v.repeat_interleave(NH // G, dim=1)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(HS)
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, Q)
        x = x + lin(y, pre + "proj_w", pre + "proj_b")
        h2 = norm(x, pre + "ln2_w", pre + "ln2_b")
        return x + lin(act(lin(h2, pre + "fc_w", pre + "fc_b")), pre + "fcproj_w", pre + "fcproj_b")

    def head(x, e):
        if e is None:
            h = norm(x, "lnf_w", "lnf_b")
            w = "lm_head" if cfg["untie_final"] else "wte"
        else:
            pre = f"exits.{e}."
            h = layer(x, pre + "block.") if cfg["exit_block"] else x
            if cfg["exit_norm"]:
                h = norm(h, pre + "norm_w", pre + "norm_b")
            if cfg["exit_mlp"]:
                h = h + lin(act(lin(h, pre + "mlp_fc_w", pre + "mlp_fc_b")), pre + "mlp_fcproj_w", pre + "mlp_fcproj_b")
            w = pre + "out_w" if cfg["untie_exits"] else "wte"
        logits = h @ P[w].t()
        loss = F.cross_entropy(logits[..., :V].reshape(-1, V), targets.reshape(-1))
        return logits, loss

    def forward():
        x = P["wte"][tokens]
        if not cfg["rope"]:
            x = x + P["wpe"][:T][None]
        outs = []
        depths = cfg["exit_depth"]
        for e, dep in enumerate(depths):
            if dep == 0:
                outs.append((e, head(x, e)))
        for l in range(cfg["L"]):
            x = layer(x, f"layers.{l}.")
            for e, dep in enumerate(depths):
                if dep == l + 1:
                    outs.append((e, head(x, e)))
        outs.sort(key=lambda o: o[0])
        res = [o[1] for o in outs]
        res.append(head(x, None))
        return res

    def total(res, it):
        w = cfg["exit_weights"]
        t = cfg["final_weight"] * res[-1][1]
        for e in range(len(res) - 1):
            t = t + w[e] * res[e][1]
        return t

    res = forward()
    out = {}
    names = [f"exit{e}" for e in range(len(res) - 1)] + ["final"]
    for n, (logits, loss) in zip(names, res):
        out[f"logits.{n}"] = logits.detach().numpy()
        out[f"loss.{n}"] = loss.detach().numpy().reshape(1)
    total(res, 0).backward()
    for k, p in P.items():
        out[f"grad.{k}"] = p.grad.detach().numpy()

    tr = cfg["training"]
    decay = [p for k, p in P.items() if p.dim() >= 2]
    nodecay = [p for k, p in P.items() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": tr["weight_decay"]},
                             {"params": nodecay, "weight_decay": 0.0}],
                            lr=tr["lr"], betas=(tr["beta1"], tr["beta2"]), eps=tr["eps"])

    def lr_at(it):
        warm, lr, mn = tr["warmup"], tr["lr"], tr["min_lr"]
        if warm > 0 and it < warm:
            return lr * (it + 1) / warm
        ratio = min(max((it - warm) / (tr["decay_iters"] - warm), 0.0), 1.0)
        return mn + 0.5 * (math.cos(math.pi * ratio) + 1.0) * (lr - mn)

    losses = []
    for it in range(cfg["steps"]):
        for p in P.values():
            p.grad = None
        res = forward()
        losses.append([r[1].item() for r in res])
        total(res, it).backward()
        torch.nn.utils.clip_grad_norm_(list(P.values()), tr["clip"])
        for g in opt.param_groups:
            g["lr"] = lr_at(it)
        opt.step()
    out["adam_losses"] = np.array(losses)
    write_st(f"{d}/results.safetensors", out)


if __name__ == "__main__":
    main(sys.argv[1])
