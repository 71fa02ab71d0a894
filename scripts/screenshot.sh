#!/usr/bin/env bash
# Renders the main window of eellm-gui with the EE-LLM 7B scenario under Xvfb to docs/screenshot.png
# (the README's picture). Usage: scripts/screenshot.sh [BUILD_DIR] [SCENARIO] [OUT.png]
# The timeline shows the first 12% of the iteration (EELLM_SCREENSHOT_ZOOM) so blocks are legible.
# BUILD_DIR defaults to build/gui, then build/release; the eellm-gui target is built if missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-}"
if [[ -z "$build" ]]; then
  for d in build/gui build/release build; do
    if [[ -f "$root/$d/CMakeCache.txt" ]]; then build="$root/$d"; break; fi
  done
fi
[[ -n "$build" && -f "$build/CMakeCache.txt" ]] || { echo "screenshot.sh: no configured build dir (pass one)" >&2; exit 1; }
scenario="${2:-$root/scenarios/ee-llm-7b.yaml}"
out="${3:-$root/docs/screenshot.png}"
cmake --build "$build" --target eellm-gui -j"$(nproc)" >/dev/null
bin="$build/gui/eellm-gui"
[[ -x "$bin" ]] || { echo "screenshot.sh: $bin was not built (is Qt6 found?)" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
command -v xvfb-run >/dev/null || { echo "screenshot.sh: xvfb-run is not installed (apt-get install xvfb)" >&2; exit 1; }
# A fresh settings file so recent files of the user do not show.
export XDG_CONFIG_HOME="$(mktemp -d)"
export EELLM_SCENARIOS="${EELLM_SCENARIOS:-$root/scenarios}"
xvfb-run -a -s "-screen 0 1920x1200x24" "$bin" "$scenario" --zoom "${EELLM_SCREENSHOT_ZOOM:-0.12}" --screenshot "$out"
rm -rf "$XDG_CONFIG_HOME"
echo "wrote $out"
