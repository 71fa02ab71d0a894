#!/usr/bin/env bash
# The whole test suite: installs dependencies if missing, builds (Release), runs ctest; then builds
# the fast layers (model, sim), the checkpoint readers (eellm_exec_io: exec/io and only what it needs)
# and the fuzzers with AddressSanitizer + UndefinedBehaviorSanitizer and assertions on (the Release
# build has NDEBUG) and runs their tests; warnings are not errors there (GCC reports false
# maybe-uninitialized under ASan), the Release build enforces them. Extra arguments go to the first ctest.
# EELLM_SKIP_SANITIZE=1 skips the second part.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
# ccache with the checkout as base directory: a fresh clone elsewhere reuses the cached objects.
if command -v ccache >/dev/null; then
  export CMAKE_CXX_COMPILER_LAUNCHER=${CMAKE_CXX_COMPILER_LAUNCHER:-ccache} CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
fi
bash scripts/build.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
export QT_QPA_PLATFORM=offscreen
# OpenMP threads wait passively: ctest runs tests side by side on few cores, where spinning
# barriers of one test steal the cores another needs.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
ctest --test-dir "${EELLM_BUILD_DIR:-build/release}" --output-on-failure -j "$(nproc)" "$@"

if [ "${EELLM_SKIP_SANITIZE:-0}" != 1 ]; then
  asan=${EELLM_ASAN_DIR:-build/asan}
  if [ ! -f "$asan/build.ninja" ]; then
    cmake -S . -B "$asan" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O1 -g1" \
      -DCMAKE_CXX_FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer" \
      -DEELLM_WERROR=OFF -DEELLM_CUDA=OFF -DEELLM_MPI=OFF -DEELLM_GUI=OFF -DEELLM_BUILD_BENCHMARKS=OFF >/dev/null
  fi
  # The fuzzers too (docs/reliability.md): their fixed-seed runs under the sanitizers catch the
  # out-of-bounds reads and overflows a plain run survives. The checkpoint tests and fuzzers link
  # eellm_exec_io only (no backend kernels, no trainer): the whole exec layer is not built here.
  cmake --build "$asan" -j "$(nproc)" --target eellm_model_tests eellm_sim_tests eellm_exec_io_tests \
    fuzz_scenario fuzz_megatron fuzz_trace fuzz_checkpoint_safetensors fuzz_checkpoint_manifest
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir "$asan" --output-on-failure -j "$(nproc)" -L '^(model|sim|exec_io|fuzz)$'
fi
