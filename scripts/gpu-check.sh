#!/usr/bin/env bash
# scripts/gpu-check.sh — everything that needs a GPU, in one run (< 8 minutes on one H200):
#   1. build    Release with CUDA (this GPU's architecture only, to keep the build short)
#   2. ops      eellm_cuda_tests: every CUDA backend op and the whole model vs the CPU reference
#   3. nccl     eellm_nccl_tests: 2 processes under mpirun when ≥ 2 GPUs, else the 1-process self-test
#   4. train    eellm train scenarios/ee-gpt-350m-1gpu.yaml (355M early-exit GPT) for a few dozen
#               steps: tokens/s and MFU = model FLOPs per iteration (cost model, `eellm describe`)
#               / step time / 989 TFLOP/s (H100/H200 dense bf16)
#   5. decode   eellm_cuda_bench_decode: batch-1 decode tokens/s vs weight bytes / 4.8 TB/s (H200)
# Output: every step's log and summary.txt under $OUT (if set) else runs/gpu-check/. A failing step
# stops the script with "gpu-check: STEP <name> FAILED" and its log tail; a test that reports
# SKIPPED on a machine with a GPU counts as a failure.
# Environment: BUILD_DIR (default build/gpu), STEPS (training steps, default 30),
# EELLM_CUDA_GEMM (bf16|tf32|fp32, default bf16), PEAK_TFLOPS (989), HBM_GBPS (4800).
set -uo pipefail
cd "$(dirname "$0")/.."
# tiny-ee is an fp32 scenario (gemm_math auto would follow it): the check exercises bf16 tensor cores.
export EELLM_CUDA_GEMM="${EELLM_CUDA_GEMM:-bf16}"

OUT_DIR=${OUT:-runs/gpu-check}
mkdir -p "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)
BUILD_DIR=${BUILD_DIR:-build/gpu}
STEPS=${STEPS:-30}
PEAK_TFLOPS=${PEAK_TFLOPS:-989}
HBM_GBPS=${HBM_GBPS:-4800}
SCENARIO=scenarios/ee-gpt-350m-1gpu.yaml
SUMMARY="$OUT_DIR/summary.txt"
: > "$SUMMARY"

note() { echo "$*" | tee -a "$SUMMARY"; }

# run_step NAME TIMEOUT_S CMD...: runs CMD with a timeout, log in $OUT_DIR/NAME.log; stops on failure.
run_step() {
  local name=$1 limit=$2
  shift 2
  local log="$OUT_DIR/$name.log"
  echo "=== gpu-check: step $name: $*"
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@" > "$log" 2>&1
  local rc=$?
  if [ $rc -ne 0 ]; then
    tail -n 40 "$log"
    [ $rc -eq 124 ] && echo "gpu-check: step $name timed out after ${limit}s"
    note "gpu-check: STEP $name FAILED (exit $rc); full log: $log"
    exit 1
  fi
  note "gpu-check: step $name ok ($((SECONDS - t0)) s)"
}

# A test step whose output says SKIPPED failed here: this machine has a GPU.
no_skips() {
  local name=$1
  if grep -q "\[  SKIPPED \]" "$OUT_DIR/$name.log"; then
    grep "\[  SKIPPED \]" "$OUT_DIR/$name.log" | head
    note "gpu-check: STEP $name FAILED: tests were skipped although a GPU is present"
    exit 1
  fi
}

note "gpu-check $(date -u +%Y-%m-%dT%H:%M:%SZ)"
if ! command -v nvidia-smi > /dev/null || ! nvidia-smi -L > "$OUT_DIR/gpus.txt" 2>&1; then
  note "gpu-check: STEP detect FAILED: nvidia-smi finds no GPU"
  exit 1
fi
NGPU=$(grep -c "^GPU " "$OUT_DIR/gpus.txt")
note "GPUs: $NGPU ($(head -n 1 "$OUT_DIR/gpus.txt"))"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >> "$SUMMARY" 2>&1 || true

GEN=()
command -v ninja > /dev/null && GEN=(-G Ninja)
run_step configure 120 cmake -S . -B "$BUILD_DIR" "${GEN[@]}" -DCMAKE_BUILD_TYPE=Release -DEELLM_CUDA=ON \
  -DEELLM_GUI=OFF -DEELLM_BUILD_BENCHMARKS=OFF -DCMAKE_CUDA_ARCHITECTURES=native
run_step build 420 cmake --build "$BUILD_DIR" -j "$(nproc)" --target eellm eellm_cuda_tests eellm_nccl_tests \
  eellm_cuda_bench_decode
BIN="$BUILD_DIR"

run_step ops 300 "$BIN/tests/cuda/eellm_cuda_tests"
no_skips ops
note "ops: $(grep -E '^\[  PASSED  \]' "$OUT_DIR/ops.log")"

if [ "$NGPU" -ge 2 ] && command -v mpirun > /dev/null; then
  run_step nccl 180 env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
    mpirun --allow-run-as-root -np 2 "$BIN/tests/cuda/eellm_nccl_tests"
else
  run_step nccl 180 "$BIN/tests/cuda/eellm_nccl_tests"
  note "nccl: single-GPU self-test (1 process); the 2-process test needs 2 GPUs"
fi
no_skips nccl

# Training data: this tree's sources and docs as bytes (no network, no external corpus).
find . -path ./build -prune -o -path ./runs -prune -o \( -name '*.cpp' -o -name '*.h' -o -name '*.md' \) \
  -type f -print | sort > "$OUT_DIR/corpus_files.txt"
run_step data 120 "$BIN/eellm" data prepare "$OUT_DIR/tokens.bin" $(cat "$OUT_DIR/corpus_files.txt")
run_step describe 60 "$BIN/eellm" describe "$SCENARIO" --format json
rm -f "$OUT_DIR/train_metrics.jsonl"
run_step train 300 "$BIN/eellm" train "$SCENARIO" --data "$OUT_DIR/tokens.bin" --steps "$STEPS" \
  --metrics "$OUT_DIR/train_metrics.jsonl"
python3 - "$OUT_DIR/describe.log" "$OUT_DIR/train_metrics.jsonl" "$PEAK_TFLOPS" >> "$SUMMARY" <<'PY' || {
import json, statistics, sys
raw = open(sys.argv[1]).read()
desc = json.loads(raw[raw.index("{"):])
def find(d, key):  # the key sits in a nested section ("totals")
    if isinstance(d, dict):
        if key in d:
            return d[key]
        for v in d.values():
            r = find(v, key)
            if r is not None:
                return r
    return None
flops = find(desc, "model_flops_per_iteration")
steps = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
steps = [s for s in steps if "step_s" in s]
if len(steps) < 6:
    sys.exit("too few training steps in the metrics file: %d" % len(steps))
step_s = statistics.median(s["step_s"] for s in steps[5:])  # skip warm-up (page migration, heuristics)
print("train: median step %.1f ms over %d steps (first 5 skipped)" % (step_s * 1e3, len(steps) - 5))
print("train: model FLOPs per iteration (cost model, with exits) %.3f TFLOP" % (flops / 1e12))
print("train: %.1f TFLOP/s achieved, MFU %.1f %% of %s TFLOP/s dense bf16" %
      (flops / step_s / 1e12, 100 * flops / step_s / (float(sys.argv[3]) * 1e12), sys.argv[3]))
print("train: trainer-reported tokens/s (cumulative, incl. warm-up) %.0f" % steps[-1]["tokens_per_s"])
PY
  note "gpu-check: STEP mfu FAILED (could not compute MFU from $OUT_DIR/describe.log and train_metrics.jsonl)"
  exit 1
}
# tokens/s at the median step time (global batch × seq per iteration).
python3 - "$SCENARIO" "$OUT_DIR/train_metrics.jsonl" >> "$SUMMARY" <<'PY' || true
import json, re, statistics, sys
text = open(sys.argv[1]).read()
gb = int(re.search(r"global_batch_size:\s*(\d+)", text).group(1))
seq = int(re.search(r"seq_length:\s*(\d+)", text).group(1))
steps = [json.loads(l) for l in open(sys.argv[2]) if l.strip() and "step_s" in l]
print("train: %.0f tokens/s at the median step time (%d tokens per iteration)" %
      (gb * seq / statistics.median(s["step_s"] for s in steps[5:]), gb * seq))
PY

run_step decode 180 "$BIN/tests/cuda/eellm_cuda_bench_decode" "$SCENARIO" 256 "$HBM_GBPS"
grep -E "^(decode|memory-bandwidth)" "$OUT_DIR/decode.log" >> "$SUMMARY"

echo "=== gpu-check: all steps passed"
cat "$SUMMARY"
