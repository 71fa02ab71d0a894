#!/usr/bin/env bash
# pareto_gpus.sh EELLM ARGS...: runs `eellm plan ARGS --format json --pareto-svg front.svg` and prints
# the distinct GPU counts on the Pareto front and how many plan dots the SVG holds.
set -eu
e=$1; shift
"$e" plan "$@" --format json --no-progress --pareto-svg front.svg > plan.json
echo "front GPU counts: $(jq -r '[.pareto[].world_size] | unique | map(tostring) | join(",")' plan.json)"
echo "svg points: $(grep -c '<circle' front.svg)"
