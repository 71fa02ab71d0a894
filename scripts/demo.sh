#!/usr/bin/env bash
# The main job, end to end on this machine: install what is missing, build, then
#   1. describe and simulate the EE-LLM 7B scenario (16 A100-80GB in 2 nodes),
#   2. plan the EE-LLM 1.3B model on 16 GPUs and write the best plan as a scenario,
#   3. run a small plan for real: the tiny early-exit GPT, 2 pipeline stages over MPI on this CPU,
#      and compare the simulator's prediction with the measured timeline.
# One backend thread per rank (2 ranks on 2 cores), as cpu-local.yaml was calibrated.
# Outputs (traces open in ui.perfetto.dev) land in runs/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
eellm=$PWD/${EELLM_BUILD_DIR:-build/release}/cli/eellm
out=runs/demo
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

echo; echo "== 1. EE-LLM 7B on 16 A100-80GB: layout, then one simulated iteration =="
"$eellm" describe ee-llm-7b
"$eellm" simulate ee-llm-7b --trace "$out/ee-llm-7b.trace.json"

echo; echo "== 2. Plan EE-LLM 1.3B on 16 GPUs (best plan → $out/best-1.3b.yaml) =="
"$eellm" plan ee-llm-1.3b --gpus 16 --top 5 --emit "$out/best-1.3b.yaml"

echo; echo "== 3. Run a small plan for real: tiny-ee, 2 pipeline stages over MPI, 3 steps =="
"$eellm" simulate tiny-ee-pp2 --trace "$out/tiny-ee-pp2.predicted.json"
scripts/mpirun.sh -np 2 "$eellm" train tiny-ee-pp2 --steps 3 --threads 1 --trace "$out/tiny-ee-pp2.measured.json" \
  --metrics "$out/tiny-ee-pp2.metrics.jsonl"
echo; echo "== predicted vs measured =="
"$eellm" compare-trace "$out/tiny-ee-pp2.predicted.json" "$out/tiny-ee-pp2.measured.json"
echo; echo "demo outputs: $out/"
