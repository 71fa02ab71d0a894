#!/usr/bin/env python3
"""Fuzz campaign of the executor's inputs (docs/reliability.md, "Fuzz campaign: checkpoints, serve, options").

Runs the real `eellm` binary on inputs made by this script's own mutators and classifies each run:
  clean   the input was refused with a message (non-zero exit, or an HTTP 4xx/503 naming the fault),
          or accepted where accepting it is right;
  crash   a signal, an abort, a sanitizer report, an escaped exception (or the server process died);
  hang    no answer within 20 s;
  absurd  accepted with a wrong result: exit 0 on a damaged checkpoint, a non-finite loss printed,
          a resume at another iteration than the checkpoint's, a 200 or 500 for a bad request, an
          option value outside its range accepted.
Surfaces: checkpoints (through `eval`, `generate` and `train --resume`), `serve` (hostile HTTP and
request fields, concurrent clients, RSS before/after) and the options of train/generate/serve/data/
calibrate/launch (bad numbers, special files as paths). Prints one table row per surface; every
finding's input is kept under WORK/findings.

  scripts/fuzz-campaign-io.py --eellm build/release/cli/eellm --count 2000 --jobs 4   # a campaign
  scripts/fuzz-campaign-io.py --eellm build/release/cli/eellm --count 20 --jobs 2     # a quick slice
"""
import argparse
import concurrent.futures as cf
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

HANG_S = 20
CRASH_MARKS = ("AddressSanitizer", "runtime error:", "terminate called", "Segmentation fault", "LeakSanitizer")

MICRO_SCENARIO = """name: micro-ee
model: {arch: gpt2, num_layers: 2, hidden_size: 16, num_attention_heads: 2, seq_length: 16,
        max_position_embeddings: 16, vocab_size: 256, make_vocab_size_divisible_by: 1}
exits: {exit_layer_nums: [1], exit_layer_weight: [0.5]}
parallel: {tensor_model_parallel_size: 1, pipeline_model_parallel_size: 1, world_size: 1, schedule: none}
cluster: {profile: local-cpu}
training: {micro_batch_size: 1, global_batch_size: 1, train_iters: 4, lr: 1.0e-3, min_lr: 1.0e-4,
           lr_warmup_iters: 1, seed: 1234, eval_interval: 50, eval_iters: 1, log_interval: 1}
inference: {method: recompute, early_exit_thres: 0.8, prompt_length: 4, max_new_tokens: 4}
execution: {device: cpu, num_threads: 1}
"""


class Tally:
    def __init__(self):
        self.rows = {}
        self.lock = threading.Lock()

    def add(self, surface, verdict, detail, work, payload):
        with self.lock:
            row = self.rows.setdefault(surface, {"inputs": 0, "clean": 0, "crash": 0, "hang": 0, "absurd": 0})
            row["inputs"] += 1
            row[verdict] += 1
            total = sum(r["inputs"] for r in self.rows.values())
            if total % 100 == 0:
                print("... %d inputs run" % total, file=sys.stderr, flush=True)
            if verdict != "clean":
                d = os.path.join(work, "findings", surface)
                os.makedirs(d, exist_ok=True)
                n = row["crash"] + row["hang"] + row["absurd"]
                with open(os.path.join(d, "%s-%04d.json" % (verdict, n)), "w") as f:
                    json.dump({"detail": detail, "input": payload}, f, indent=1, default=repr)

    def table(self):
        out = ["| surface | inputs | clean errors | crashes | hangs | absurd |", "|---|---|---|---|---|---|"]
        for s, r in self.rows.items():
            out.append("| %s | %d | %d | %d | %d | %d |" % (s, r["inputs"], r["clean"], r["crash"], r["hang"], r["absurd"]))
        return "\n".join(out)


def run(cmd, cwd=None, timeout=HANG_S):
    """(verdict-so-far, rc, stdout, stderr): 'crash', 'hang' or None (to be judged by the caller)."""
    try:
        p = subprocess.run(cmd, cwd=cwd, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        return "hang", None, (e.stdout or b"").decode(errors="replace"), (e.stderr or b"").decode(errors="replace")
    out, err = p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    if p.returncode < 0 or p.returncode in (134, 139) or any(m in err for m in CRASH_MARKS):
        return "crash", p.returncode, out, err
    return None, p.returncode, out, err


# ---------------------------------------------------------------- checkpoints

def fnv1a64(b):
    h = 0xCBF29CE484222325
    for c in b:
        h = ((h ^ c) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def read(p):
    if os.path.islink(p) or not os.path.isfile(p):  # never open a FIFO the mutators made (it would block)
        raise OSError("not a regular file: " + p)
    with open(p, "rb") as f:
        return f.read()


def write(p, b):
    if os.path.islink(p) or os.path.isfile(p):
        os.remove(p)
    elif os.path.isdir(p):
        shutil.rmtree(p)
    with open(p, "wb") as f:
        f.write(b)


def fix_up(sub, names):
    """Records the files' new sizes and checksums in state.json, as an attacker would (if it still parses)."""
    try:
        st = json.loads(read(os.path.join(sub, "state.json")))
    except (ValueError, OSError, RecursionError):
        return
    for n in names:
        b = read(os.path.join(sub, n))
        st.setdefault("files", {})[n] = {"bytes": len(b), "fnv1a64": fnv1a64(b)}
    write(os.path.join(sub, "state.json"), json.dumps(st).encode())


HOSTILE_VALUES = [None, True, False, -1, 0, 1, 2**31 - 1, 2**31, 2**40, 2**63 - 1, 2**64, -2**63, 1.5, -0.0, 1e308,
                  "3", "", "x" * 1000, [], [1], {}, {"a": 1}, [[[[[[]]]]]]]


def mutate_header(rng, blob):
    n = struct.unpack("<Q", blob[:8])[0]
    h = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    names = [k for k in h if k != "__metadata__"]
    t = h[rng.choice(names)]
    what = rng.randrange(7)
    if what == 0:
        t["shape"] = rng.choice([[0], [-1], [2**62, 2**62], "4", [1.5], [], [2**31] * 3] + [[rng.randrange(1, 9)] * rng.randrange(1, 4)])
    elif what == 1:
        a, b = t["data_offsets"]
        t["data_offsets"] = rng.choice([[b, a], [a, b + 4], [a - 4, b - 4], [0, b - a], [2**64 - 8, 8], [-4, b], "0,4", [a]])
    elif what == 2:
        t["dtype"] = rng.choice(["F16", "BF16", "I32", "x", 7, None])
    elif what == 3:
        h["extra.%d" % rng.randrange(99)] = {"dtype": "F32", "shape": [4], "data_offsets": rng.choice([[0, 16], [2**63, 2**63 + 16], [len(data), len(data) + 16]])}
    elif what == 4:
        del h[rng.choice(names)]
    elif what == 5:
        t[rng.choice(["shape", "data_offsets", "dtype"])] = rng.choice(HOSTILE_VALUES)
    else:
        h[rng.choice(names)] = rng.choice(HOSTILE_VALUES)
    hb = json.dumps(h).encode()
    return struct.pack("<Q", len(hb)) + hb + data


def mutate_state(rng, st):
    what = rng.randrange(6)
    if what == 0:
        st[rng.choice(["iteration", "seed", "consumed_samples", "scenario", "files", "format"])] = rng.choice(HOSTILE_VALUES)
    elif what == 1:
        st["iteration"] = rng.choice([-1, 2**40, 2**63 - 1, "2", 2.5, None, 0, 3])
    elif what == 2:
        st.pop(rng.choice(list(st.keys())), None)
    elif what == 3:
        files = st.get("files", {})
        if files:
            f = files[rng.choice(list(files))]
            f[rng.choice(["bytes", "fnv1a64"])] = rng.choice(HOSTILE_VALUES + ["0" * 16])
    elif what == 4:
        st["scenario"] = rng.choice(["{", "model: [" * 5000, "name: x\n" * 3, "a: &a [*a]", "\xff\xfe", "model: {num_layers: 2147483647}"])
    else:
        st[rng.choice(["x", "iteration"])] = "__DEEP__"  # spliced in as text: 3,000 nested arrays
    return st


ALL, NONE = {"eval", "generate", "train"}, set()


def mutate_checkpoint(rng, sub, top):
    """Damages the checkpoint in place; returns (description, the commands that must refuse it)."""
    files = ["model.safetensors", "optimizer.safetensors", "state.json"]
    kind = rng.randrange(10)
    f = os.path.join(sub, rng.choice(files))
    if kind == 0:
        b = read(f)
        write(f, b[:rng.randrange(len(b))])
        return "truncate %s" % os.path.basename(f), ALL
    if kind == 1:
        b = bytearray(read(f))
        for _ in range(rng.randrange(1, 9)):
            i = rng.randrange(len(b))
            b[i] ^= 1 << rng.randrange(8)
        write(f, bytes(b))
        return "flip bits in %s" % os.path.basename(f), ALL if not f.endswith("state.json") else NONE
    if kind == 2:
        name = rng.choice(files[:2])
        b = bytearray(read(os.path.join(sub, name)))
        n = struct.unpack("<Q", bytes(b[:8]))[0]
        i = rng.randrange(8 + n, len(b) - 3) & ~3 if len(b) > 8 + n + 4 else 8 + n
        b[i:i + 4] = struct.pack("<f", rng.choice([math.nan, math.inf, -math.inf]))
        write(os.path.join(sub, name), bytes(b))
        fix_up(sub, [name])
        # generate and eval do not read the moments: only their size and checksum are checked.
        return "non-finite value in %s, checksum fixed up" % name, ALL if name == files[0] else {"train"}
    if kind == 3:
        a, b = os.path.join(sub, files[0]), os.path.join(sub, files[1])
        ba, bb = read(a), read(b)
        write(a, bb)
        write(b, ba)
        if rng.random() < 0.5:
            fix_up(sub, files[:2])
        return "swap model and optimizer files", ALL
    if kind in (4, 5):
        name = rng.choice(files[:2])
        write(os.path.join(sub, name), mutate_header(rng, read(os.path.join(sub, name))))
        fix_up(sub, [name])
        return "mutated %s header, checksum fixed up" % name, NONE
    if kind == 6:
        st = mutate_state(rng, json.loads(read(os.path.join(sub, "state.json"))))
        text = json.dumps(st).replace('"__DEEP__"', "[" * 3000 + "]" * 3000)
        write(os.path.join(sub, "state.json"), text.encode())
        return "state.json field: " + text[:200], NONE
    if kind == 7:
        latest = os.path.join(top, "latest")
        v = rng.choice(["", "iter_9999999", "../../etc", "/", "x" * 5000, "iter_0000002\n\n", "\0", "state.json"])
        write(latest, v.encode())
        return "latest = %r" % v[:40], NONE if v.strip() == "iter_0000002" else ALL
    if kind == 8:
        os.remove(f)
        what = rng.randrange(4)
        if what == 0:
            os.mkdir(f)
        elif what == 1:
            os.mkfifo(f)
        elif what == 2:
            os.symlink("/dev/zero", f)
        else:
            os.symlink(f, f)  # a loop
        return "%s replaced by a special file (%d)" % (os.path.basename(f), what), ALL
    b = bytearray(read(f))
    i = rng.randrange(len(b))
    b[i:i] = os.urandom(rng.randrange(1, 64))
    write(f, bytes(b))
    fix_up(sub, [os.path.basename(f)] if not f.endswith("state.json") else [])
    return "bytes inserted in %s (checksum fixed up)" % os.path.basename(f), NONE


def judge_checkpoint(cmd_kind, expect_refused, rc, out, err, st_iteration):
    if rc != 0:
        return ("clean", "") if err.strip() else ("absurd", "non-zero exit without a message")
    if re.search(r"\b(nan|inf)\b", out, re.I) and cmd_kind == "eval":
        return "absurd", "non-finite loss printed with exit 0"
    if expect_refused:
        return "absurd", "damaged checkpoint accepted"
    if cmd_kind == "train":
        m = re.search(r"step\s+(\d+)/", out)
        if not isinstance(st_iteration, int) or isinstance(st_iteration, bool) or st_iteration < 0:
            return "absurd", "resumed although state.json's iteration is %r" % (st_iteration,)
        if m and int(m.group(1)) != st_iteration + 1:
            return "absurd", "resumed at step %s, the checkpoint is at iteration %r" % (m.group(1), st_iteration)
    return "clean", ""


def checkpoint_case(args, tally, base, i):
    rng = random.Random(args.seed * 1000003 + i)
    d = os.path.join(args.work, "ck", "c%d" % i)
    shutil.copytree(base, d, symlinks=True)
    sub = os.path.join(d, "iter_0000002")
    desc, must_refuse = mutate_checkpoint(rng, sub, d)
    try:
        st_iteration = json.loads(read(os.path.join(sub, "state.json"))).get("iteration")
    except Exception:  # noqa: BLE001 - any damage: the iteration is unknown
        st_iteration = None
    kind = rng.choice(["eval", "generate", "train"])
    cmd = {"eval": [args.eellm, "eval", d, "--iters", "1", "--threads", "1"],
           "generate": [args.eellm, "generate", d, "--prompt", "ab", "--max-new-tokens", "2", "--threads", "1"],
           "train": [args.eellm, "train", args.scenario, "--resume", d, "--steps",
                     str(st_iteration + 1 if isinstance(st_iteration, int) and 0 <= st_iteration < 10 else 3),
                     "--threads", "1"]}[kind]
    verdict, rc, out, err = run(cmd)
    detail = verdict or ""
    if verdict is None:
        verdict, detail = judge_checkpoint(kind, kind in must_refuse, rc, out, err, st_iteration)
    tally.add("checkpoints (%s)" % kind, verdict, detail, args.work, {"mutation": desc, "cmd": cmd, "stderr": err[-2000:]})
    if verdict == "clean":
        shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- serve

def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def http_raw(port, data, timeout=HANG_S):
    """The server's answer (bytes) until it closes, or None on a timeout."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        try:
            s.sendall(data)
        except OSError:
            pass
        s.shutdown(socket.SHUT_WR)
        got = b""
        while True:
            b = s.recv(65536)
            if not b:
                return got
            got += b
    except socket.timeout:
        return None
    except OSError:
        return b""
    finally:
        s.close()


def request(body, headers=None, method="PUT", path="/api", version="HTTP/1.1"):
    h = {"Host": "x", "Content-Type": "application/json", "Content-Length": str(len(body)), "Connection": "close"}
    h.update(headers or {})
    head = "%s %s %s\r\n" % (method, path, version) + "".join("%s: %s\r\n" % kv for kv in h.items() if kv[1] is not None)
    return head.encode("latin-1", "replace") + b"\r\n" + body


FIELDS = ["prompts", "tokens_to_generate", "use_early_exit", "early_exit_thres", "exit_layers", "top_k", "top_p",
          "temperature", "random_seed", "echo_prompts", "stop_sequences", "no_log", "logprobs", "add_BOS",
          "beam_width", "length_penalty", "top_p_decay", "top_p_bound", "print_max_prob", "prevent_newline_after_colon"]
BAD_FIELD = [None, -1, 2**63, -2**63 - 1, 1e308, -1e308, "str", [], {}, [[["x"]]], [None], "x" * 70000, 1.5, [-1], [""],
             [1] * 1000, {"a": [1]}]


def serve_input(rng):
    """(raw bytes, must_not_be_200)."""
    kind = rng.randrange(10)
    good = {"prompts": ["ab"], "tokens_to_generate": 1}
    if kind <= 2:  # one field of the right name with a hostile value
        body = dict(good)
        body[rng.choice(FIELDS)] = rng.choice(BAD_FIELD)
        return request(json.dumps(body).encode()), "maybe"
    if kind == 3:  # deep or broken JSON
        n = rng.choice([65, 1000, 100000])
        body = rng.choice([b"[" * n + b"]" * n, b'{"prompts": "a", "top_k": ' + b"[" * n + b"]" * n + b"}",
                           b'{"prompts": "a"', b"\xff\xfe{}", b'{"prompts": "a", "prompts": 3}', b"null", b"1e999"])
        return request(body), True
    if kind == 4:  # request line
        line = rng.choice([b"GET", b"PUT /api", b"PUT /api HTTP/9.9", b"\x00\x01\x02 / HTTP/1.1", b"A" * 9000 + b" / HTTP/1.1",
                           b"PUT http://evil/api HTTP/1.1", b"PUT /api?x=" + b"%" * 5000 + b" HTTP/1.1", b"PUT  /api  HTTP/1.1",
                           b"GET /../../etc/passwd HTTP/1.1", b"PUT /api HTTP/1.1\r\nHost: x\r\nContent-Length: 5"])
        return line + b"\r\n\r\n", True
    if kind == 5:  # Content-Length
        cl = rng.choice(["-1", "99999999999999999999", "18446744073709551615", "abc", "5, 5", "0x10", "", " 10"])
        return request(b'{"prompts": "ab"}', {"Content-Length": cl}), True
    if kind == 6:  # chunked bodies
        chunks = rng.choice([b"ffffffffffffffff\r\nab\r\n0\r\n\r\n", b"-5\r\nab\r\n0\r\n\r\n", b"zz\r\n", b"5\r\nab",
                             b"3;ext=" + b"e" * 9000 + b"\r\nabc\r\n0\r\n\r\n", b"100000\r\n" + b"a" * 100 + b"\r\n"])
        return request(chunks, {"Transfer-Encoding": "chunked", "Content-Length": None}), True
    if kind == 7:  # headers
        many = "".join("X-%d: %s\r\n" % (j, "v" * 50) for j in range(rng.choice([100, 2000, 20000])))
        return ("PUT /api HTTP/1.1\r\nHost: x\r\n" + many + "Content-Length: 2\r\n\r\n{}").encode(), True
    if kind == 8:  # wrong types for the whole body / unknown fields / huge batch
        body = rng.choice([[good], "prompts", {"prompts": ["a"] * 5000}, {"prompt": "a"}, {"prompts": ["a" * 20]},
                           {"prompts": "ab", "tokens_to_generate": 2**31}])
        return request(json.dumps(body).encode()), True
    return request(json.dumps(good).encode(), {"Content-Encoding": rng.choice(["gzip", "br", "deflate, gzip"])}), True


def serve_campaign(args, tally, ckpt):
    cmd = [args.eellm, "serve", ckpt, "--port", "0", "--threads", "1", "--max-body", "65536",
           "--header-timeout", "3", "--body-timeout", "3", "--read-timeout", "3", "--connections", "8"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(os.path.join(args.work, "serve.log"), "wb"))
    line = proc.stdout.readline().decode()
    m = re.search(r":(\d+) ", line)
    if not m:
        tally.add("serve", "crash", "did not start: " + line, args.work, cmd)
        return
    port = int(m.group(1))
    http_raw(port, request(json.dumps({"prompts": ["ab"], "tokens_to_generate": 1}).encode()))
    rss0 = rss_kb(proc.pid)

    def one(i):
        rng = random.Random(args.seed * 7919 + i)
        data, must_refuse = serve_input(rng)
        got = http_raw(port, data)
        if proc.poll() is not None:
            return tally.add("serve", "crash", "server exited %s" % proc.returncode, args.work, repr(data[:3000]))
        if got is None:
            return tally.add("serve", "hang", "no answer in %d s" % HANG_S, args.work, repr(data[:3000]))
        sm = re.match(rb"HTTP/1\.[01] (\d{3})", got)
        status = int(sm.group(1)) if sm else 0
        bad = status >= 500 and status != 503 or (must_refuse is True and status == 200)
        tally.add("serve", "absurd" if bad else "clean", "status %d" % status, args.work,
                  {"request": repr(data[:3000]), "answer": repr(got[:1000])})

    with cf.ThreadPoolExecutor(max_workers=16) as ex:
        list(ex.map(one, range(args.count)))
    rss1 = rss_kb(proc.pid)
    alive = proc.poll() is None
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        tally.add("serve", "hang", "SIGTERM did not stop the server", args.work, cmd)
    print("serve: RSS %d MB before, %d MB after %d requests (%s)" % (rss0 // 1024, rss1 // 1024, args.count,
          "alive" if alive else "dead"))


# ---------------------------------------------------------------- options

BAD_INT = ["-1", "-5", "1e309", "nan", "inf", "0x10", "99999999999999999999", "1.5", "3abc", "", "-9223372036854775808",
           "2147483648", " ", "--", "١٢"]
BAD_FLOAT = ["nan", "inf", "-inf", "1e309", "-1", "abc", "", "0x1p3", "1,5"]


def special_paths(work):
    d = os.path.join(work, "special")
    os.makedirs(d, exist_ok=True)
    fifo = os.path.join(d, "fifo")
    if not os.path.exists(fifo):
        os.mkfifo(fifo)
    loop = os.path.join(d, "loop")
    if not os.path.lexists(loop):
        os.symlink(loop, loop)
    return {"fifo": fifo, "zero": "/dev/zero", "urandom": "/dev/urandom", "dir": d, "loop": loop,
            "unwritable": "/proc/eellm-no/such", "missing": os.path.join(d, "no", "such", "file"), "empty": "",
            "long": os.path.join(d, "x" * 300)}


def option_cases(args, ckpt):
    """(command, must_fail) templates; each names one hostile value."""
    sc, e = args.scenario, args.eellm
    out = os.path.join(args.work, "opt-out")
    ints = {"train": ["--steps", "--save-interval", "--threads"],
            "generate": ["--max-new-tokens", "--threads", "--top-k", "--max-pending", "--draft-tokens", "--exits",
                         "--draft-exit", "--seed"],
            "serve": ["--port", "--connections", "--read-timeout", "--max-batch", "--max-body", "--threads",
                      "--max-pending", "--draft-tokens"],
            "launch": ["--nodes", "--gpus-per-node", "--cpus-per-task", "--signal-seconds", "--steps"],
            "calibrate": ["--threads"], "eval": ["--iters", "--threads"]}
    floats = {"generate": ["--temperature", "--top-p", "--threshold", "--timeout", "--draft-threshold"],
              "serve": ["--header-timeout", "--body-timeout"]}
    paths = {"train": ["--save", "--resume", "--metrics", "--data", "--resume-latest"],
             "generate": ["--batch-file", "--stats-out", "checkpoint"], "serve": ["checkpoint"],
             "data": ["output", "inputs"], "calibrate": ["--out", "--cluster-out", "--base"],
             "launch": ["-o", "plan"], "eval": ["checkpoint", "--data"]}
    base = {"train": [e, "train", sc, "--steps", "1", "--threads", "1"],
            "generate": [e, "generate", ckpt, "--prompt", "ab", "--max-new-tokens", "2", "--threads", "1"],
            "serve": [e, "serve", ckpt, "--port", "0", "--threads", "1"],
            "launch": [e, "launch", sc, "--slurm", "-o", os.path.join(out, "job.sbatch")],
            "calibrate": [e, "calibrate", "--quick", "--out", os.path.join(out, "p.yaml")],
            "data": [e, "data", "prepare", os.path.join(out, "t.bin")],
            "eval": [e, "eval", ckpt, "--iters", "1", "--threads", "1"]}
    return ints, floats, paths, base


def set_arg(cmd, name, value, positional_index=None):
    cmd = list(cmd)
    if positional_index is not None:
        cmd[positional_index] = value
        return cmd
    if name in cmd:
        cmd[cmd.index(name) + 1] = value
    else:
        cmd += [name, value]
    return cmd


def option_case(args, tally, ckpt, sp, i):
    rng = random.Random(args.seed * 104729 + i)
    ints, floats, paths, base = option_cases(args, ckpt)
    os.makedirs(os.path.join(args.work, "opt-out"), exist_ok=True)
    kind = rng.randrange(3)
    cmdname = rng.choice(list({"ints": ints, "floats": floats, "paths": paths}[["ints", "floats", "paths"][kind]]))
    table = [ints, floats, paths][kind]
    opt = rng.choice(table[cmdname])
    cmd = base[cmdname]
    if kind == 2:
        key = rng.choice(list(sp))
        if cmdname == "calibrate":  # a valid destination would calibrate for minutes
            key = rng.choice(["fifo", "zero", "dir", "loop", "long", "unwritable"])
        value = sp[key] + ("-%d" % i if key == "missing" else "")  # an earlier case may have created it
        if cmdname == "calibrate" and opt == "--base" and rng.random() < 0.5:
            value = rng.choice([sp["fifo"], sp["zero"], sp["dir"], sp["loop"], "nope"])
        pos = {"checkpoint": 2, "plan": 2, "output": 3}.get(opt)
        if opt == "inputs":
            cmd = cmd + [value]
        else:
            cmd = set_arg(cmd, opt, value, pos)
        # Outputs may be created (missing) or be checkpoint directories; every other special path is refused.
        output = opt in ("--save", "--metrics", "--stats-out", "-o", "--out", "--cluster-out", "output", "--resume-latest")
        must_fail = not (key == "empty" or (output and key == "missing")
                         or (key == "dir" and opt in ("--save", "--resume-latest")))
        if cmdname == "train" and opt in ("--save", "--metrics"):
            cmd = set_arg(cmd, "--steps", "1")
    else:
        value = rng.choice(BAD_INT if kind == 0 else BAD_FLOAT)
        cmd = set_arg(cmd, opt, value)
        must_fail = True
    verdict, rc, out, err = run(cmd, cwd=os.path.join(args.work, "opt-out"))
    detail = verdict or ""
    if verdict is None:
        if rc == 0 and must_fail:
            verdict, detail = "absurd", "accepted"
        elif rc != 0 and not err.strip():
            verdict, detail = "absurd", "failed without a message"
        else:
            verdict = "clean"
    tally.add("options (%s)" % cmdname, verdict, detail, args.work, {"cmd": cmd, "stderr": err[-1500:]})


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--eellm", required=True)
    ap.add_argument("--work", default="/tmp/eellm-fuzz-campaign-io")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--count", type=int, default=1000, help="inputs per surface")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--surfaces", default="checkpoints,serve,options")
    args = ap.parse_args()
    args.eellm = os.path.abspath(args.eellm)
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    args.scenario = os.path.join(args.work, "micro-ee.yaml")
    with open(args.scenario, "w") as f:
        f.write(MICRO_SCENARIO)
    base = os.path.join(args.work, "base-ckpt")
    verdict, rc, out, err = run([args.eellm, "train", args.scenario, "--steps", "2", "--save", base, "--threads", "1"],
                                timeout=600)
    if verdict or rc != 0:
        sys.exit("cannot make the base checkpoint: " + err)
    tally = Tally()
    surfaces = args.surfaces.split(",")
    with cf.ThreadPoolExecutor(max_workers=args.jobs) as ex:
        futures = []
        if "checkpoints" in surfaces:
            futures += [ex.submit(checkpoint_case, args, tally, base, i) for i in range(args.count)]
        if "options" in surfaces:
            sp = special_paths(args.work)
            futures += [ex.submit(option_case, args, tally, base, sp, i) for i in range(args.count)]
        for fu in futures:
            fu.result()
    if "serve" in surfaces:
        serve_campaign(args, tally, base)
    print(tally.table())
    bad = sum(r["crash"] + r["hang"] + r["absurd"] for r in tally.rows.values())
    print("findings under %s/findings" % args.work if bad else "no findings")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
