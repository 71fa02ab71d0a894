#!/usr/bin/env python3
"""Fuzz campaign for eellm's text surfaces (issue [reliability]; docs/reliability.md).

Generates fresh hostile inputs with its own mutators (not tests/fuzz/driver.cpp's) and runs them through
the built `eellm` binary:
  scenario  mutated scenario YAML into describe, simulate, plan, sweep and compare
            (numbers at their bounds ±1, huge, negative, -0, 5e-324, nan/inf, types swapped, deep
            nesting, anchors/aliases, duplicate keys, unicode and invalid UTF-8, missing sections)
  megatron  mutated Megatron/EE-LLM launch lines into convert --from-megatron (and the converted
            scenario into describe)
  trace     mutated Chrome traces into compare-trace
Every run is classified: clean (exit 0 with sane figures, or exit 1 with an "eellm CMD:" message),
crash (a signal, an abort, "terminate called", a sanitizer report), hang (over --timeout seconds of CPU,
or blocked for ten times that) or
absurd (exit 0 with a negative/NaN/infinite/over-100 % figure, MFU or bubble out of [0, 1], memory
below 0, …: see check_json/check_text). The inputs of every crash/hang/absurd run are kept in --keep.

  scripts/fuzz-campaign.py --eellm build/release/cli/eellm --seed 1 --runs 2000 --jobs 2

prints the table (surface, inputs, clean errors, crashes, hangs, absurd). Exit status 1 when any run
crashed, hung or was absurd. Deterministic for a seed (the inputs; not the timing of hangs).
"""
import argparse
import concurrent.futures
import json
import math
import os
import random
import re
import resource
import signal
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Numbers at and around the validation bounds (model/validate.h) and the usual edge cases.
BOUNDS = [4096, 262144, 65536, 1048576, 16777216, 64, 1024, 4194304, 1e6, 1e-3, 1e-6, 1e7]
EDGE_NUMBERS = ["0", "-0", "-0.0", "1", "-1", "2", "3", "7", "5e-324", "-5e-324", "1e308", "-1e308", "1e30",
                "1.7976931348623157e308", "2147483647", "2147483648", "-2147483648", "4294967296",
                "9223372036854775807", "9223372036854775808", "-9223372036854775809", "18446744073709551616",
                ".nan", "nan", "NaN", ".inf", "-.inf", "inf", "1e-300", "0.5", "0.999999", "1.0000001",
                "0x10", "0o17", "1_000", "+5", "1e", "--1", "1.5.2", "0.1e-400"]
SWAPS = ["[1, 2]", "{a: 1}", "true", "false", "'12'", "\"\"", "null", "~", "[]", "{}", "!!binary aGVsbG8=",
         "!!float 3", "!!str 4", "[[[[1]]]]", "yes", "\"\\u0000\"", "|\n  multi\n  line"]
UNICODE = ["ééé", "名前", "\u202eevil", "a\u0000b", "\U0001F600" * 50, "x" * 300, "../../etc/passwd",
           "/dev/zero", "/dev/urandom", "con", "\ufeffbom", "a\tb", "\"unterminated"]
INVALID_UTF8 = [b"\xff\xfe", b"\xc3\x28", b"\xe2\x82", b"\xf0\x28\x8c\xbc", b"\xed\xa0\x80"]


def edge_number(rng):
    r = rng.random()
    if r < 0.45:
        return rng.choice(EDGE_NUMBERS)
    b = rng.choice(BOUNDS)
    v = rng.choice([b - 1, b, b + 1, -b, b * 2, b / 2]) if isinstance(b, int) else rng.choice([b, b * 0.999, b * 1.001, -b])
    return repr(v) if isinstance(v, float) else str(int(v))


# ---------------------------------------------------------------- scenario YAML mutators
NUM_LINE = re.compile(r"^(\s*[A-Za-z_][\w]*:\s*)(-?[0-9][0-9.eE+_-]*)(\s*(#.*)?)$")
KEY_LINE = re.compile(r"^(\s*)([A-Za-z_][\w]*):(.*)$")


def lines_matching(lines, pat):
    return [i for i, l in enumerate(lines) if pat.match(l)]


def mut_number(lines, rng):
    idx = lines_matching(lines, NUM_LINE)
    if not idx:
        return lines
    i = rng.choice(idx)
    m = NUM_LINE.match(lines[i])
    if rng.random() < 0.35:  # plausible: near the shipped value, so that more inputs get through
        try:
            v = float(m.group(2))
            w = rng.choice([v * 2, v / 2, v + 1, v - 1, v * 10, v / 10, v * 1000])
            lines[i] = m.group(1) + (str(int(w)) if w == int(w) and abs(w) < 2 ** 62 else repr(w))
            return lines
        except (ValueError, OverflowError):
            pass
    lines[i] = m.group(1) + edge_number(rng)
    return lines


def mut_swap_type(lines, rng):
    idx = lines_matching(lines, KEY_LINE)
    i = rng.choice(idx)
    m = KEY_LINE.match(lines[i])
    val = rng.choice(SWAPS)
    if "\n" in val:
        val = val.replace("\n", "\n" + m.group(1))
    lines[i] = m.group(1) + m.group(2) + ": " + val
    return lines


def mut_deep(lines, rng):
    idx = lines_matching(lines, KEY_LINE)
    i = rng.choice(idx)
    m = KEY_LINE.match(lines[i])
    n = rng.choice([64, 200, 1000, 5000, 50000])
    o, c = rng.choice([("[", "]"), ("{a: ", "}")])
    lines[i] = m.group(1) + m.group(2) + ": " + o * n + "1" + c * n
    return lines


def mut_alias(lines, rng):
    kind = rng.random()
    if kind < 0.4:  # billion laughs
        bomb = ["lol0: &l0 [x, x, x, x, x, x, x, x, x, x]"]
        for k in range(1, rng.choice([4, 6, 9])):
            bomb.append("lol%d: &l%d [*l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d, *l%d]"
                        % (k, k, *([k - 1] * 10)))
        return bomb + lines
    if kind < 0.7:  # a section aliased into another
        tops = [i for i, l in enumerate(lines) if re.match(r"^[a-z_]+:\s*$", l)]
        if len(tops) >= 2:
            a, b = rng.sample(tops, 2)
            lines[a] = lines[a].rstrip() + " &sec"
            lines[b] = lines[b].rstrip() + " *sec"
        return lines
    idx = lines_matching(lines, NUM_LINE)  # an undefined or self alias
    if idx:
        i = rng.choice(idx)
        m = NUM_LINE.match(lines[i])
        lines[i] = m.group(1) + rng.choice(["*nope", "&a *a", "<<: *a", "&a [*a]"])
    return lines


def mut_duplicate(lines, rng):
    idx = lines_matching(lines, KEY_LINE)
    i = rng.choice(idx)
    if rng.random() < 0.2:  # many keys
        m = KEY_LINE.match(lines[i])
        extra = [m.group(1) + "k%d: %d" % (k, k) for k in range(rng.choice([1000, 20000, 100000]))]
        return lines[:i + 1] + extra + lines[i + 1:]
    lines.insert(i + 1, lines[i])
    return lines


def pick_line(lines, rng, key_pattern):
    """A line whose key matches key_pattern, else any key line."""
    idx = [i for i, l in enumerate(lines) if re.match(key_pattern, l)]
    return rng.choice(idx or lines_matching(lines, KEY_LINE))


def mut_unicode(lines, rng):
    i = pick_line(lines, rng, r"^\s*(name|description|profile|device|arch|activation|"
                                                       r"normalization|schedule|method|params_dtype):")
    m = KEY_LINE.match(lines[i])
    if rng.random() < 0.3:
        bad = rng.choice(INVALID_UTF8).decode("utf-8", "surrogateescape")  # bytes again in to_bytes
        lines[i] = m.group(1) + m.group(2) + ": " + bad + "x"
        return lines
    lines[i] = m.group(1) + m.group(2) + ": " + json.dumps(rng.choice(UNICODE), ensure_ascii=False)
    return lines


def mut_missing(lines, rng):
    tops = [i for i, l in enumerate(lines) if re.match(r"^[a-z_]+:", l)]
    if not tops:
        return lines
    k = rng.randrange(len(tops))
    start = tops[k]
    end = tops[k + 1] if k + 1 < len(tops) else len(lines)
    if rng.random() < 0.5:
        return lines[:start] + lines[end:]
    # or one key of that section
    inner = [i for i in range(start + 1, end) if KEY_LINE.match(lines[i])]
    if inner:
        del lines[rng.choice(inner)]
    return lines


def mut_structure(lines, rng):
    r = rng.random()
    i = rng.randrange(len(lines))
    if r < 0.3:
        lines[i] = "  " + lines[i]
    elif r < 0.5:
        lines[i] = lines[i].lstrip()
    elif r < 0.7:
        del lines[i]
    elif r < 0.85:
        return lines[:i]  # truncated
    else:
        lines.insert(i, rng.choice(["---", "...", "%YAML 1.1", "? complex", "- item", "\t: tab", "key: [unclosed"]))
    return lines


def mut_list(lines, rng):
    i = pick_line(lines, rng, r"^\s*(exit_layer_nums|exit_layer_weight|layer_partition|"
                                                       r"exit_rates):")
    m = KEY_LINE.match(lines[i])
    n = rng.choice([0, 1, 3, 4097, 100000])
    lines[i] = m.group(1) + m.group(2) + ": [" + ", ".join(edge_number(rng) for _ in range(min(n, 8)))
    if n > 8:
        lines[i] += ", " + ", ".join(str(k % 50 + 1) for k in range(n - 8))
    lines[i] += "]"
    return lines


SCENARIO_MUTATORS = [(mut_number, 6), (mut_swap_type, 2), (mut_deep, 1), (mut_alias, 1), (mut_duplicate, 1),
                     (mut_unicode, 1), (mut_missing, 2), (mut_structure, 1), (mut_list, 1)]


def pick(rng, weighted):
    total = sum(w for _, w in weighted)
    x = rng.uniform(0, total)
    for f, w in weighted:
        x -= w
        if x <= 0:
            return f
    return weighted[-1][0]


def to_bytes(lines):
    return "\n".join(lines).encode("utf-8", "surrogateescape") + b"\n"


def mutate_scenario(text, rng):
    lines = text.split("\n")
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        lines = pick(rng, SCENARIO_MUTATORS)(lines, rng)
        if not lines:
            lines = [""]
    return to_bytes(lines)


# ---------------------------------------------------------------- Megatron command-line mutators
def mutate_megatron(text, rng):
    toks = text.split(" ") if rng.random() < 0.5 else text.split("\n")
    joiner = " " if len(toks) > 1 and " " in text and toks[0] != text.split("\n")[0] else "\n"
    r = rng.random()
    nums = [i for i, t in enumerate(toks) if re.fullmatch(r"-?[0-9][0-9.e-]*\\?", t.strip())]
    if r < 0.35 and nums:
        i = rng.choice(nums)
        toks[i] = edge_number(rng)
    elif r < 0.45:
        toks.insert(rng.randrange(len(toks) + 1), rng.choice([
            "$(( (-9223372036854775807 - 1) / -1 ))", "$(( 7 % 0 ))", "$(( 1 << 70 ))", "$((" * 2000 + "1" + "))" * 2000,
            "${X:-${X:-${X:-1}}}", "$UNDEFINED", "\"unterminated", "'single", "\\", "`cmd`", "$(cat /dev/zero)",
            "--exit-layer-nums " + " ".join(str(rng.randrange(-3, 5000)) for _ in range(rng.choice([1, 5, 300]))),
            "--num-layers", "--num-layers=" + edge_number(rng), "--tensor-model-parallel-size " + edge_number(rng),
            "--pipeline-model-parallel-size " + edge_number(rng), "--micro-batch-size " + edge_number(rng),
            "--global-batch-size " + edge_number(rng), "--seq-length " + edge_number(rng),
            "--exit-layer-weight " + edge_number(rng), "--fill-explicit-bubbles", "--num-fill-warmup-microbatches -1"]))
    elif r < 0.55:  # variable doubling
        k = rng.choice([5, 20, 40])
        pre = ["V=x"] + ["V=\"$V$V\"" for _ in range(k)]
        return "\n".join(pre) + "\n" + text + " --hidden-size $V\n"
    elif r < 0.65 and toks:
        del toks[rng.randrange(len(toks))]
    elif r < 0.75 and toks:
        i = rng.randrange(len(toks))
        toks.insert(i, toks[i])
    elif r < 0.85 and toks:
        i = rng.randrange(len(toks))
        toks[i] = toks[i] + rng.choice(["\u00e9", "\x00", "\\\n", "\"", "$", "=", "\r"])
    else:
        cut = rng.randrange(max(1, len(text)))
        return text[:cut]
    return joiner.join(toks)


# ---------------------------------------------------------------- Chrome trace mutators
def mutate_trace(text, rng):
    try:
        doc = json.loads(text)
    except ValueError:
        return text[: rng.randrange(max(1, len(text)))]
    events = doc.get("traceEvents", doc) if isinstance(doc, dict) else doc
    r = rng.random()
    if not isinstance(events, list) or not events:
        return json.dumps(doc)
    ev = rng.choice(events)
    if r < 0.4 and isinstance(ev, dict):
        key = rng.choice(["ts", "dur", "pid", "tid", "ph", "name", "args", "cat"])
        ev[key] = rng.choice([-1, -0.0, 5e-324, 1e308, float("nan"), float("inf"), 2 ** 63, 10 ** 8, -10 ** 8,
                              "X", "B", "E", None, [], {}, "", "\u00e9\u202e", 2 ** 31, 0, 1e-300])
    elif r < 0.5 and isinstance(ev, dict):
        ev.pop(rng.choice(list(ev.keys()) or ["ts"]), None)
    elif r < 0.6:
        events.extend(json.loads(json.dumps(rng.sample(events, min(len(events), 5)))))
    elif r < 0.65:
        events.clear()
    elif r < 0.72:
        deep = 1
        for _ in range(rng.choice([100, 1000, 20000])):
            deep = [deep]
        ev_args = {"deep": deep}
        if isinstance(ev, dict):
            ev["args"] = ev_args
    elif r < 0.8 and isinstance(doc, dict):
        doc["traceEvents"] = rng.choice([None, 5, "x", {}, [[1]]])
    elif r < 0.88:
        for e in events:  # every rank moved or negative times everywhere
            if isinstance(e, dict) and "ts" in e and rng.random() < 0.5:
                e["ts"] = -abs(e["ts"]) - 1 if rng.random() < 0.5 else e["ts"] * 1e12
    else:
        s = json.dumps(doc)
        return s[: rng.randrange(max(1, len(s)))]
    try:
        return json.dumps(doc, allow_nan=True)
    except (ValueError, RecursionError):
        return "[" * 5000


# ---------------------------------------------------------------- output checks
FRACTION_KEYS = re.compile(r"(^|_)(mfu|bubble_fraction|fraction|fits_share|acceptance)")
SIGNED_KEYS = re.compile(r"(overhead|error|delta|diff|change|speedup_minus|relative)")


def check_json(value, path="", out=None):
    """Absurd figures in a JSON document: non-finite, negative where a size/time is, fractions out of [0, 1]."""
    out = [] if out is None else out
    if isinstance(value, dict):
        for k, v in value.items():
            check_json(v, path + "." + str(k), out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            check_json(v, path + "[%d]" % i, out)
    elif isinstance(value, bool) or value is None or isinstance(value, str):
        if value is None and re.search(r"(_s|GiB|mfu|fraction|tokens_per_s|bytes|tflops)$", path):
            out.append("%s is null (NaN or infinity written as null)" % path)
    elif isinstance(value, (int, float)):
        key = path.rsplit(".", 1)[-1]
        if isinstance(value, float) and not math.isfinite(value):
            out.append("%s = %r" % (path, value))
        elif SIGNED_KEYS.search(key):
            pass
        elif value < 0:
            out.append("%s = %r < 0" % (path, value))
        elif FRACTION_KEYS.search(key) and value > 1.0 + 1e-9:
            out.append("%s = %r > 1" % (path, value))
    return out


TEXT_ABSURD = [
    (re.compile(r"(?<![\w.])(-?nan|-?inf(inity)?)(?![\w])", re.I), "NaN/inf printed"),
    (re.compile(r"(?<![\w.+-])-\d+(\.\d+)?(e[+-]?\d+)?\s*%"), "negative percentage"),
    (re.compile(r"(?<![\w.+-])-\d+(\.\d+)?\s*(GiB|MiB|GB|s\b|ms\b|tokens/s)"), "negative size or time"),
    (re.compile(r"MFU\s*:?\s*(\d{3,}|[2-9]\d\d)(\.\d+)?\s*%", re.I), "MFU over 100 %"),
    (re.compile(r"bubble[^\n]{0,40}?(\d{3,})(\.\d+)?\s*%", re.I), "bubble over 100 %"),
]


def check_text(text):
    out = []
    for pat, what in TEXT_ABSURD:
        m = pat.search(text)
        if m and not re.search(r"error [+-]", text[max(0, m.start() - 8):m.end()]):
            out.append("%s: %r" % (what, text[max(0, m.start() - 40):m.end() + 10]))
    return out


# ---------------------------------------------------------------- running
def run(cmd, timeout, stdin=None):
    """(exit status, stdout, stderr); status None for a hang: over `timeout` seconds of CPU (RLIMIT_CPU,
    so that a loaded machine does not turn slow runs into hangs) or blocked for 10 × timeout."""
    cpu = max(1, int(math.ceil(timeout)))

    def limit():
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))

    try:
        p = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10 * timeout,
                           preexec_fn=limit, env=dict(os.environ, EELLM_SCENARIOS=os.path.join(ROOT, "scenarios")))
    except subprocess.TimeoutExpired:
        return None, "", ""
    if p.returncode in (-signal.SIGXCPU, -signal.SIGKILL):
        return None, "", ""
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


CRASH_TEXT = re.compile(r"terminate called|AddressSanitizer|UndefinedBehaviorSanitizer|runtime error:|"
                        r"Segmentation fault|core dumped|Assertion .* failed")


def classify(rc, out, err, absurd):
    if rc is None:
        return "hang", "over the time limit"
    if rc < 0 or rc >= 128 or CRASH_TEXT.search(err):
        return "crash", "rc %s: %s" % (rc, err.strip()[-300:])
    if rc == 0:
        return ("absurd", "; ".join(absurd[:3])) if absurd else ("ok", "")
    if not err.strip():
        return "absurd", "exit %d without a message" % rc
    return "error", ""


def json_or_absurd(out):
    try:
        return check_json(json.loads(out))
    except ValueError as e:
        return ["exit 0 but the JSON output does not parse: %s" % e]


def scenario_case(eellm, tmp, data, rng, timeout):
    path = os.path.join(tmp, "s.yaml")
    with open(path, "wb") as f:
        f.write(data)
    cmd = rng.choice(["describe", "describe", "simulate", "simulate", "plan", "sweep", "compare"])
    if cmd == "describe":
        rc, out, err = run([eellm, "describe", path, "--format", "json"], timeout)
        return cmd, rc, out, err, json_or_absurd(out) if rc == 0 else []
    if cmd == "simulate":
        rc, out, err = run([eellm, "simulate", path, "--format", "json"], timeout)
        return cmd, rc, out, err, json_or_absurd(out) if rc == 0 else []
    if cmd == "plan":
        gpus = rng.choice(["1", "4", "8", "16"])
        rc, out, err = run([eellm, "plan", path, "--gpus", gpus, "--format", "json", "--simulate-top", "4", "--threads",
                            "1", "--no-progress", "--top", "3"], timeout)
        return cmd, rc, out, err, json_or_absurd(out) if rc == 0 else []
    if cmd == "sweep":
        vary = rng.choice(["training.micro_batch_size=1,2", "parallel.pipeline_model_parallel_size=1,2",
                           "cluster.inter_node.bandwidth_GBps=-1,0,5e-324,25", "model.num_layers=0,1,4096,4097",
                           "training.global_batch_size=1,1073741824", "exits.exit_layer_nums=[1],[0],[99999]"])
        csv = os.path.join(tmp, "s.csv")
        if os.path.exists(csv):
            os.remove(csv)
        rc, out, err = run([eellm, "sweep", path, "--vary", vary, "--csv", csv, "--threads", "1"], timeout)
        absurd = check_text(out) if rc == 0 else []
        if rc == 0 and os.path.exists(csv):
            with open(csv, encoding="utf-8", errors="replace") as f:
                absurd += check_text(f.read().replace(",", " "))
        return cmd, rc, out, err, absurd
    other = rng.choice(["tiny-ee", "ee-llm-1.3b", path])
    rc, out, err = run([eellm, "compare", path, other, "--format", "json"], timeout)
    return cmd, rc, out, err, json_or_absurd(out) if rc == 0 else []


def megatron_case(eellm, tmp, data, rng, timeout):
    path = os.path.join(tmp, "m.sh")
    with open(path, "wb") as f:
        f.write(data)
    yaml = os.path.join(tmp, "m.yaml")
    if os.path.exists(yaml):
        os.remove(yaml)
    rc, out, err = run([eellm, "convert", "--from-megatron", path, "-o", yaml], timeout)
    absurd = []
    if rc == 0:  # what convert accepted must describe cleanly (or be refused with a message)
        rc2, out2, err2 = run([eellm, "describe", yaml, "--format", "json"], timeout)
        if rc2 is None or rc2 < 0 or rc2 >= 128:
            return "convert", rc2, out2, err2, []
        if rc2 == 0:
            absurd = json_or_absurd(out2)
    return "convert", rc, out, err, absurd


def trace_case(eellm, tmp, data, rng, timeout):
    a = os.path.join(tmp, "a.json")
    with open(a, "wb") as f:
        f.write(data)
    other = os.path.join(ROOT, "tests", "fuzz", "corpus", "trace", rng.choice(["tiny-ee.json", "tiny-pp2.json"]))
    args = [a, other] if rng.random() < 0.5 else [other, a]
    rc, out, err = run([eellm, "compare-trace", *args], timeout)
    absurd = check_text(re.sub(r"error [+-]?\d+(\.\d+)?%", "", out)) if rc == 0 else []
    return "compare-trace", rc, out, err, absurd


SURFACES = {
    "scenario": (["scenarios/*.yaml", "tests/fuzz/corpus/scenario/*.yaml"], mutate_scenario, scenario_case),
    "megatron": (["tests/data/megatron/*.sh", "tests/fuzz/corpus/megatron/*.sh"], mutate_megatron, megatron_case),
    "trace": (["tests/fuzz/corpus/trace/*.json"], mutate_trace, trace_case),
}


def seeds_of(patterns):
    import glob
    files = sorted(f for p in patterns for f in glob.glob(os.path.join(ROOT, p)))
    return [(f, open(f, encoding="utf-8").read()) for f in files]


def one(args):
    surface, index, seed, eellm, timeout, keep = args
    rng = random.Random("%s-%d-%d" % (surface, seed, index))
    patterns, mutate, case = SURFACES[surface]
    name, text = rng.choice(seeds_of(patterns))
    data = mutate(text, rng)
    data = data if isinstance(data, bytes) else data.encode("utf-8", "surrogateescape")
    with tempfile.TemporaryDirectory(prefix="eellm-fuzz-") as tmp:
        cmd, rc, out, err, absurd = case(eellm, tmp, data, rng, timeout)
    kind, why = classify(rc, out, err, absurd)
    if kind in ("crash", "hang", "absurd") and keep:
        os.makedirs(keep, exist_ok=True)
        stem = os.path.join(keep, "%s-%s-%d-%d" % (surface, kind, seed, index))
        with open(stem + ".input", "wb") as f:
            f.write(data)
        with open(stem + ".why", "w") as f:
            f.write("%s %s (from %s)\n%s\n" % (cmd, kind, os.path.relpath(name, ROOT), why))
    return surface, cmd, kind, why


def render(table, done, total):
    out = "| surface | inputs | accepted (sane) | clean errors | crashes | hangs | absurd |\n|---|---|---|---|---|---|---|\n"
    for key in sorted(table):
        r = table[key]
        out += "| %s | %d | %d | %d | %d | %d | %d |\n" % (key, r["inputs"], r["ok"], r["error"], r["crash"], r["hang"],
                                                         r["absurd"])
    return out + ("" if done == total else "(%d of %d runs so far)\n" % (done, total))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eellm", default=os.path.join(ROOT, "build", "release", "cli", "eellm"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--runs", type=int, default=1000, help="inputs per surface")
    ap.add_argument("--surfaces", default="scenario,megatron,trace")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--timeout", type=float, default=20.0, help="seconds before a run counts as a hang")
    ap.add_argument("--table", default="", help="also rewrite this file with the table every 50 runs")
    ap.add_argument("--keep", default="fuzz-findings", help="folder for the inputs of bad runs ('' to drop them)")
    a = ap.parse_args()
    surfaces = a.surfaces.split(",")
    work = [(s, i, a.seed, a.eellm, a.timeout, a.keep) for i in range(a.runs) for s in surfaces]  # interleaved
    table = {}
    bad = []
    with concurrent.futures.ProcessPoolExecutor(max_workers=a.jobs) as pool:
        for n, (surface, cmd, kind, why) in enumerate(pool.map(one, work, chunksize=4), 1):
            for key in (surface, surface + " / " + cmd):
                row = table.setdefault(key, {"inputs": 0, "ok": 0, "error": 0, "crash": 0, "hang": 0, "absurd": 0})
                row["inputs"] += 1
                row[kind] += 1
            if kind in ("crash", "hang", "absurd"):
                bad.append("%s %s %s: %s" % (surface, cmd, kind, why[:300]))
            if a.table and (n % 50 == 0 or n == len(work)):
                with open(a.table, "w") as f:
                    f.write(render(table, n, len(work)))
    print(render(table, len(work), len(work)), end="")
    for line in bad[:200]:
        print(line, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
