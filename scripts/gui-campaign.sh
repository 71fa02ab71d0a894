#!/usr/bin/env bash
# [reliability] The GUI's hostile-file campaign, long form (docs/reliability.md): COUNT fresh mutated
# scenarios, cluster profiles and traces (plus the special files) from SEED, each opened through the
# GUI's loading paths offscreen in its own process, with a 20 s CPU-time limit (a hang that computes),
# a 300 s wall-clock limit (one that blocks: a FIFO) and an 8 GiB address-space limit. CPU time, not
# wall time, because the machine is shared: at a load of 24 on 2 cores, 2.7 s of CPU took 36 s.
# Prints one line per input and the table: inputs, clean errors, accepted, unnamed errors, crashes,
# hangs.
#   scripts/gui-campaign.sh [SEED] [COUNT]      (EELLM_BUILD_DIR: build/release)
set -uo pipefail
cd "$(dirname "$0")/.."
seed=${1:-$(date +%s)}
count=${2:-400}
bin=${EELLM_BUILD_DIR:-build/release}/tests/gui/gui_campaign
[ -x "$bin" ] || { echo "error: $bin not built (bash scripts/build.sh --target gui_campaign)" >&2; exit 2; }
export QT_QPA_PLATFORM=offscreen EELLM_SCENARIOS=$PWD/scenarios
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bin" generate "$work" "$seed" "$count" || { echo "error: generating the inputs failed" >&2; exit 2; }
list=$work/inputs.tsv
n=$(wc -l <"$list")
declare -A tally=()
for ((i = 0; i < n; i++)); do
  line=$( (ulimit -v 8388608 -t 20; timeout -k 5 300 "$bin" open "$list" "$i" 1) 2>&1)
  rc=$?
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    outcome=hang  # blocked for 300 s
  elif [ "$rc" -eq 152 ]; then
    outcome=hang  # SIGXCPU: more than 20 s of CPU
  elif [ "$rc" -gt 128 ]; then
    outcome="crash (signal $((rc - 128)))"
  elif [ "$rc" -ne 0 ]; then
    outcome="crash (exit $rc)"
  else
    outcome=$(printf '%s\n' "$line" | grep -E "^$i	" | cut -f4)
    [ -n "$outcome" ] || outcome="crash (no result)"
  fi
  case $outcome in hang | crash*) printf '%s\t%s\t%s\n' "$i" "$(sed -n "$((i + 1))p" "$list")" "$outcome" ;; esac
  [ -n "${VERBOSE:-}" ] && printf '%s\n' "$line"
  tally[$outcome]=$((${tally[$outcome]:-0} + 1))
done
crashes=0
for k in "${!tally[@]}"; do case $k in crash*) crashes=$((crashes + tally[$k])) ;; esac; done
echo
echo "seed $seed"
echo "| inputs | clean errors (named, form) | accepted | unnamed errors | memory > bound | crashes | hangs (> 20 s CPU) |"
echo "|---|---|---|---|---|---|---|"
echo "| $n | $((${tally[named]:-0} + ${tally[form]:-0})) (${tally[named]:-0}, ${tally[form]:-0}) | ${tally[accepted]:-0} |" \
  "${tally[unnamed]:-0} | ${tally[memory]:-0} | $crashes | ${tally[hang]:-0} |"
[ $((crashes + ${tally[hang]:-0} + ${tally[unnamed]:-0} + ${tally[memory]:-0})) -eq 0 ]
