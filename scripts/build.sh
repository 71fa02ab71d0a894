#!/usr/bin/env bash
# Configures and builds eellm in build/release (Release, warnings as errors). Extra arguments are
# passed to the build (e.g. a target name). EELLM_BUILD_DIR overrides the folder.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${EELLM_BUILD_DIR:-build/release}
if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DEELLM_WERROR=ON ${EELLM_CMAKE_ARGS:-} >/dev/null
fi
cmake --build "$build" -j "$(nproc)" "$@"
