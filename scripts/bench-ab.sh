#!/usr/bin/env bash
# A/B of two bench_train binaries on a shared or drifting host: runs them alternately (A, B, A, B, …)
# so a slow phase of the machine hits both, and prints every run's tokens/s of one benchmark row, the
# medians and B/A. Build A, copy it away (cp build/release/tests/bench/bench_train /tmp/bt_a), build
# B, then:
#   scripts/bench-ab.sh /tmp/bt_a build/release/tests/bench/bench_train [--runs N] [--row NAME]
# --runs (default 5): runs per side. --row (default BM_TrainTinyEe): the Google Benchmark row whose
# tokens_per_s counter is compared (BM_TrainBusyCore works too). Each run is
# `BIN --benchmark_filter=ROW --rounds=0 --gemm-ab=0` (no PyTorch, no per-shape GEMM table).
# Quiet machine only for figures you report: check `uptime`, and say which runs you compared.
set -euo pipefail
usage() { echo "usage: $0 BIN_A BIN_B [--runs N] [--row BM_NAME]" >&2; exit 2; }
[[ $# -ge 2 ]] || usage
A="$1" B="$2"
shift 2
RUNS=5
ROW=BM_TrainTinyEe
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) [[ $# -ge 2 && "$2" =~ ^[1-9][0-9]*$ ]] || { echo "$0: --runs needs a positive integer" >&2; exit 2; }
            RUNS="$2"; shift 2 ;;
    --row) [[ $# -ge 2 && "$2" =~ ^BM_[A-Za-z0-9_]+$ ]] || { echo "$0: --row needs a benchmark name (BM_…)" >&2; exit 2; }
           ROW="$2"; shift 2 ;;
    *) usage ;;
  esac
done
for bin in "$A" "$B"; do
  [[ -x "$bin" ]] || { echo "$0: $bin: not an executable bench_train" >&2; exit 1; }
done

# tokens/s of ROW from one run: its tokens_per_s counter, read from Google Benchmark's JSON output.
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
tokens_per_s() {
  if ! "$1" --benchmark_filter="^${ROW}" --rounds=0 --gemm-ab=0 --benchmark_out="$TMP/run.json" \
       --benchmark_out_format=json > "$TMP/run.log" 2>&1; then
    echo "$0: $1 failed:" >&2; tail -5 "$TMP/run.log" >&2; return 1
  fi
  python3 - "$TMP/run.json" "$ROW" <<'PY'
import json, sys
rows = [b for b in json.load(open(sys.argv[1]))["benchmarks"] if b["name"].startswith(sys.argv[2])]
if rows and "tokens_per_s" in rows[0]:
    print(f'{rows[0]["tokens_per_s"]:.0f}')
PY
}

echo "A: $A"
echo "B: $B"
echo "row $ROW, $RUNS runs each, alternating; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
a_all=() b_all=()
for ((r = 1; r <= RUNS; ++r)); do
  a=$(tokens_per_s "$A"); b=$(tokens_per_s "$B")
  [[ -n "$a" && -n "$b" ]] || { echo "$0: no tokens_per_s in the $ROW row" >&2; exit 1; }
  a_all+=("$a") b_all+=("$b")
  echo "  run $r: A $a, B $b tokens/s"
done
python3 - "${a_all[*]}" "${b_all[*]}" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import statistics, sys
a = [float(x) for x in sys.argv[1].split()]
b = [float(x) for x in sys.argv[2].split()]
ma, mb = statistics.median(a), statistics.median(b)
print(f"median A {ma:.0f}, B {mb:.0f} tokens/s → B/A {mb / ma:.3f} "
      f"(per-run B/A {min(y / x for x, y in zip(a, b)):.3f}–{max(y / x for x, y in zip(a, b)):.3f}); "
      f"load average after: {sys.argv[3]}")
PY
