#!/usr/bin/python3
"""PyTorch side of bench_train: the same early-exit GPT as eellm's tiny-ee (GPT-2 style, exits with
a LayerNorm and the tied projection) trained with AdamW in fp32 on N threads; prints one JSON line
{"tokens_per_s": ..., "step_s": ...}.

Usage: bench_train.py --layers 6 --hidden 256 --heads 8 --seq 256 --vocab 256 --micro 8
                      --exits 2,4 --threads 2 --steps 5 --warmup 2
"""
import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, C, NH):
        super().__init__()
        self.NH = NH
        self.ln1, self.ln2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.qkv, self.proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.fc, self.fcproj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=-1)
        q, k, v = (t.view(B, T, self.NH, C // self.NH).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // self.NH)
        mask = torch.ones(T, T, dtype=torch.bool).tril()
        att = att.masked_fill(~mask, float("-inf")).softmax(-1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(B, T, C))
        return x + self.fcproj(F.gelu(self.fc(self.ln2(x))))


class EarlyExitGPT(nn.Module):
    def __init__(self, L, C, NH, T, V, exits):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(T, C)
        self.blocks = nn.ModuleList(Block(C, NH) for _ in range(L))
        self.exits = exits
        self.exit_norms = nn.ModuleList(nn.LayerNorm(C) for _ in exits)
        self.lnf = nn.LayerNorm(C)

    def forward(self, idx, targets):
        B, T = idx.shape
        x = self.wte(idx) + self.wpe(torch.arange(T))
        losses = []
        for l, blk in enumerate(self.blocks):
            x = blk(x)
            if l + 1 in self.exits:
                h = self.exit_norms[self.exits.index(l + 1)](x)
                losses.append(F.cross_entropy((h @ self.wte.weight.t()).view(-1, self.wte.weight.shape[0]), targets.view(-1)))
        h = self.lnf(x)
        losses.append(F.cross_entropy((h @ self.wte.weight.t()).view(-1, self.wte.weight.shape[0]), targets.view(-1)))
        return losses


def main():
    ap = argparse.ArgumentParser()
    for k, v in dict(layers=6, hidden=256, heads=8, seq=256, vocab=256, micro=8, threads=2, steps=5, warmup=2).items():
        ap.add_argument(f"--{k}", type=int, default=v)
    ap.add_argument("--exits", default="2,4")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    exits = [int(e) for e in a.exits.split(",") if e]
    model = EarlyExitGPT(a.layers, a.hidden, a.heads, a.seq, a.vocab, exits)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1, betas=(0.9, 0.95))
    idx = torch.randint(0, a.vocab, (a.micro, a.seq))
    tgt = torch.randint(0, a.vocab, (a.micro, a.seq))
    times = []
    for step in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        losses = model(idx, tgt)
        total = losses[-1] + sum(0.5 * l for l in losses[:-1])
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step >= a.warmup:
            times.append(time.perf_counter() - t0)
    step_s = sum(times) / len(times)
    print(json.dumps({"tokens_per_s": a.micro * a.seq / step_s, "step_s": step_s, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
