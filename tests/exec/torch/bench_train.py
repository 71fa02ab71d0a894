#!/usr/bin/python3
"""PyTorch side of bench_train: the same early-exit GPT as eellm's tiny-ee (GPT-2 style, exits with
a LayerNorm and the tied projection) trained with AdamW on N threads, in fp32 or with bf16 autocast;
prints one JSON line {"tokens_per_s": ..., "step_s": ...}.

Usage: bench_train.py --layers 6 --hidden 256 --heads 8 --seq 256 --vocab 256 --micro 8
                      --exits 2,4 --threads 2 --steps 5 --warmup 2 [--gemm-math fp32|bf16]

--gemm-math bf16 runs the forward pass under torch.autocast("cpu", dtype=torch.bfloat16), PyTorch's
mixed precision on CPUs: matmuls and linear layers in bf16 (oneDNN's bf16 kernels in Debian's torch),
norms, softmax and the losses in fp32, fp32 parameters and optimizer. It is the counterpart of eellm's
execution.gemm_math bf16 (bf16 GEMM operands, fp32 accumulation, everything else fp32).

A fair baseline: torch's BLAS (Debian's OpenBLAS) runs the best kernels for this CPU. OpenBLAS 0.3.21
detects CPUs newer than it as an old core (Prescott/Haswell), so the script sets OPENBLAS_CORETYPE
before torch loads, also over an inherited older family (AVX-512 → SkylakeX, AVX2+FMA → Haswell: what a current OpenBLAS
picks, the same rule as eellm's exec/backend/gemm.cpp), and OPENBLAS_NUM_THREADS / OMP_NUM_THREADS
to --threads. The JSON line names the kernel ("blas"), the OpenMP wait settings it ran with
("omp_waits") and adds the process CPU seconds per step.

The OpenMP wait policy matters as much as the kernel: torch's OpenMP threads spin (libgomp's default)
while Debian's pthread OpenBLAS wants the same two cores for its own threads, which halves torch's
speed here. bench_train (tests/bench/bench_train.cpp) therefore runs this script under each wait
setting (libgomp default, OMP_WAIT_POLICY=passive, GOMP_SPINCOUNT=1000) and keeps the fastest.
"""
import argparse
import ctypes
import json
import math
import os
import sys
import time


def best_coretype():
    try:
        flags = next(l for l in open("/proc/cpuinfo") if l.startswith("flags")).split()
    except (OSError, StopIteration):
        return ""
    if {"avx512f", "avx512bw", "avx512vl"} <= set(flags):
        return "SkylakeX"
    if {"avx2", "fma"} <= set(flags):
        return "Haswell"
    return ""


# Kernel families at least as new as SkylakeX: an inherited OPENBLAS_CORETYPE naming one is kept.
AVX512_CORES = {"skylakex", "cooperlake", "sapphirerapids"}


def set_blas_env(threads):
    best, cur = best_coretype(), os.environ.get("OPENBLAS_CORETYPE", "")
    if best and not (cur.lower() == best.lower() or cur.lower() in AVX512_CORES):
        os.environ["OPENBLAS_CORETYPE"] = best
    os.environ.setdefault("OPENBLAS_NUM_THREADS", str(threads))
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))


def blas_kernel():
    """The BLAS torch loaded and its kernel family, e.g. "OpenBLAS SkylakeX"."""
    try:
        lib = ctypes.CDLL("libopenblas.so.0")
        lib.openblas_get_corename.restype = ctypes.c_char_p
        return "OpenBLAS " + lib.openblas_get_corename().decode()
    except (OSError, AttributeError):
        return "unknown"


def onednn_version():
    """The oneDNN (MKL-DNN) torch was built with, e.g. "oneDNN v2.6.3": its bf16 matmuls run there."""
    import re
    m = re.search(r"MKL-DNN (v[0-9.]+)", torch.__config__.show())
    return "oneDNN " + m.group(1) if m and torch.backends.mkldnn.is_available() else "no oneDNN"


def _threads_arg():
    for i, a in enumerate(sys.argv):
        if a == "--threads" and i + 1 < len(sys.argv):
            return int(sys.argv[i + 1])
        if a.startswith("--threads="):
            return int(a.split("=", 1)[1])
    return 2


set_blas_env(_threads_arg())
import torch  # noqa: E402 (after the BLAS environment)
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402


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
    ap.add_argument("--gemm-math", choices=("fp32", "bf16"), default="fp32")
    a = ap.parse_args()
    bf16 = a.gemm_math == "bf16"
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    exits = [int(e) for e in a.exits.split(",") if e]
    model = EarlyExitGPT(a.layers, a.hidden, a.heads, a.seq, a.vocab, exits)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1, betas=(0.9, 0.95))
    idx = torch.randint(0, a.vocab, (a.micro, a.seq))
    tgt = torch.randint(0, a.vocab, (a.micro, a.seq))
    times, cpu = [], []
    for step in range(a.warmup + a.steps):
        t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            losses = model(idx, tgt)
        total = losses[-1] + sum(0.5 * l for l in losses[:-1])
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step >= a.warmup:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    step_s, cpu_s = sum(times) / len(times), sum(cpu) / len(cpu)
    waits = ", ".join(f"{k}={os.environ[k]}" for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT") if k in os.environ)
    print(json.dumps({"tokens_per_s": a.micro * a.seq / step_s, "step_s": step_s, "cpu_s": cpu_s,
                      "torch": torch.__version__, "threads": torch.get_num_threads(), "blas": blas_kernel(),
                      "omp_waits": waits or "libgomp default",
                      "precision": f"bf16 autocast ({onednn_version()} bf16 matmuls)" if bf16 else "fp32"}))


if __name__ == "__main__":
    main()
