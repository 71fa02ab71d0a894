#!/usr/bin/env bash
# The whole test suite: installs dependencies if missing, builds (Release), runs ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export QT_QPA_PLATFORM=offscreen
ctest --test-dir "${EELLM_BUILD_DIR:-build/release}" --output-on-failure -j "$(nproc)" "$@"
