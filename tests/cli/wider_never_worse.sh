#!/usr/bin/env bash
# wider_never_worse.sh EELLM SCENARIO GPUS: plans SCENARIO on GPUS GPUs plain, with movable exits,
# with the partition neighbourhood and with both, and fails unless each wider search's best rank_s
# (CSV column ranking_time_s) is at most that of every narrower search it contains.
set -eu
e=$1; sc=$2; gpus=$3
best() { "$e" plan "$sc" --gpus "$gpus" --top 1 --format csv --no-progress "$@" | awk -F, 'NR==2 {print $15}'; }
plain=$(best); movable=$(best --exits movable); neigh=$(best --partition-neighbourhood)
both=$(best --exits movable --partition-neighbourhood)
echo "best rank_s: plain $plain, movable exits $movable, neighbourhood $neigh, both $both"
le() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a <= b)}'; }
le "$movable" "$plain" && le "$neigh" "$plain" && le "$both" "$movable" && le "$both" "$neigh" || {
  echo "a wider search returned a worse plan"
  exit 1
}
echo "never worse"
