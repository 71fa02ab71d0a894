#!/usr/bin/env python3
"""Compares two metrics files of `eellm train --metrics` (single-process lines have "step" and
"exits": [...], distributed ones "iter" and "exit0", "exit1", ...): the same iterations, each once
and in order, with losses within a relative tolerance. Usage: compare_losses.py A B RTOL STEPS."""
import json
import sys


def curve(path):
    rows = []
    with open(path) as f:
        for line in f:
            j = json.loads(line)
            if "eval" in j:
                continue
            it = j.get("iter", j.get("step"))
            exits = j["exits"] if "exits" in j else [j[k] for k in sorted(k for k in j if k.startswith("exit"))]
            rows.append((it, [j["loss"], j["final"]] + exits))
    return rows


def main():
    a, b, rtol, steps = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    ca, cb = curve(a), curve(b)
    for path, c in ((a, ca), (b, cb)):
        its = [it for it, _ in c]
        if its != list(range(1, steps + 1)):
            sys.exit(f"{path}: iterations {its}, expected 1..{steps} each once (lost or double-counted steps)")
    worst = 0.0
    for (it, x), (_, y) in zip(ca, cb):
        if len(x) != len(y):
            sys.exit(f"iteration {it}: {len(x)} losses in {a}, {len(y)} in {b}")
        for u, v in zip(x, y):
            rel = abs(u - v) / max(abs(v), 1e-12)
            worst = max(worst, rel)
            if rel > rtol:
                sys.exit(f"iteration {it}: loss {u} ({a}) vs {v} ({b}): relative difference {rel:.2e} > {rtol}")
    print(f"losses of {steps} iterations agree: largest relative difference {worst:.2e} (tolerance {rtol})")


main()
