#!/usr/bin/env python3
"""Checks the include rules between eellm's layers and between exec/'s parts (docs/architecture.md).

Every quoted #include of a source file is classified by the folder it names; a file may include
only what its layer (and, inside exec/, its part) is allowed to see, and no files may include each
other in a cycle. Exit status 1 lists every broken rule with file and line; 0 prints a one-line summary.
"""
import os
import re
import sys
from pathlib import Path

ROOT = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[2])

# exec/'s parts in dependency order: a part may include itself and the parts before it.
EXEC_PARTS = ["backend", "comm", "gpt", "io", "train", "generate"]
# The part of sim/ that exec/ may see: the schedule and the event contract, nothing else.
SIM_CONTRACT = {"sim/schedule.h", "sim/timeline.h", "sim/trace.h", "sim/units.h"}
# Layers: which top-level folders each may include.
LAYERS = {
    "model": {"model"},
    "sim": {"model", "sim"},
    "exec": {"model", "sim", "exec"},
    "fidelity": {"model", "sim", "exec", "fidelity"},
    "gui": {"model", "sim", "gui"},
    "cli": {"model", "sim", "exec", "fidelity", "cli"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
QT = re.compile(r'^\s*#\s*include\s+<Q[A-Za-z]')


def exec_part(path):
    parts = path.split("/")
    return parts[1] if len(parts) > 2 and parts[0] == "exec" else None


def check_file(rel, text, errors, edges):
    layer = rel.split("/")[0]
    allowed = LAYERS[layer]
    for lineno, line in enumerate(text.splitlines(), 1):
        if QT.match(line) and layer != "gui":
            errors.append(f"{rel}:{lineno}: only gui/ may include Qt ({line.strip()})")
        m = INCLUDE.match(line)
        if not m:
            continue
        inc = m.group(1)
        top = inc.split("/")[0]
        if top not in LAYERS:
            continue  # same-folder or third-party include
        edges.setdefault(rel, []).append((inc, lineno))
        where = f"{rel}:{lineno}: includes {inc}"
        if top not in allowed:
            errors.append(f"{where}: {layer}/ may include only {', '.join(sorted(allowed))}")
        elif layer == "exec" and top == "sim" and inc not in SIM_CONTRACT:
            errors.append(f"{where}: exec/ may see only sim's schedule/timeline/trace contract")
        elif layer == "exec" and top == "exec":
            mine, theirs = exec_part(rel), exec_part(inc)
            if mine is None or theirs is None:
                errors.append(f"{where}: exec/ files live in one of its parts {EXEC_PARTS}")
            elif EXEC_PARTS.index(theirs) > EXEC_PARTS.index(mine):
                errors.append(f"{where}: exec/{mine} may not depend on the later part exec/{theirs}")


def include_cycles(edges):
    """Cycles between files (a header and its source count as one unit): every strongly connected
    component of more than one unit is reported once, e.g. "a -> b -> a"."""
    def unit(path):
        return os.path.splitext(path)[0]
    graph = {}
    for src, incs in edges.items():
        for inc, _ in incs:
            if unit(inc) != unit(src):
                graph.setdefault(unit(src), set()).add(unit(inc))
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append("include cycle: " + " -> ".join(sorted(component)) + " -> " + sorted(component)[0])

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def main():
    errors, edges, count = [], {}, 0
    for layer in LAYERS:
        for path in sorted((ROOT / layer).rglob("*")):
            if path.suffix not in {".h", ".cpp", ".cu"}:
                continue
            rel = path.relative_to(ROOT).as_posix()
            check_file(rel, path.read_text(encoding="utf-8", errors="replace"), errors, edges)
            count += 1
    errors += include_cycles(edges)
    if count == 0:
        print(f"include_rules: no sources found under {ROOT}")
        return 1
    for e in errors:
        print(e)
    print(f"include_rules: {count} files, {len(errors)} broken rules")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
