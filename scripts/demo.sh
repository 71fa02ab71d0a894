#!/usr/bin/env bash
# The main job, end to end on this machine: install what is missing, build, describe and simulate
# the EE-LLM 7B scenario on its A100 cluster, then train the tiny early-exit model for real on the
# CPU for a few steps. Outputs land in runs/demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
eellm=${EELLM_BUILD_DIR:-build/release}/cli/eellm
out=runs/demo
mkdir -p "$out"

echo "== describe: EE-LLM 7B on 16 A100-80GB (2 nodes) =="
"$eellm" describe ee-llm-7b
