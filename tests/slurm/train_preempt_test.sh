#!/usr/bin/env bash
# `eellm train` (single process) without Slurm: SIGUSR1 after the first step makes it checkpoint
# and exit 75 naming the checkpoint; the rerun with --resume-latest continues from it to the end,
# each iteration in the metrics file once. Usage: train_preempt_test.sh EELLM WORKDIR.
set -uo pipefail
E=$1 WORK=$2
rm -rf "$WORK" && mkdir -p "$WORK" && cd "$WORK" || exit 1
args=(train tiny-ee --steps 3 --threads 1 --save ckpt --resume-latest ckpt --metrics m.jsonl)
"$E" "${args[@]}" > first.log 2>&1 &
pid=$!
while [ ! -s m.jsonl ] && kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
kill -USR1 "$pid"
wait "$pid"
rc=$?
cat first.log
[ "$rc" -eq 75 ] || { echo "FAIL: exit code $rc after SIGUSR1, wanted 75"; exit 1; }
grep -q "stopped by SIGUSR1 after iteration [12]; checkpoint ckpt/iter_000000[12] written" first.log \
  || { echo "FAIL: no checkpoint named"; exit 1; }
"$E" "${args[@]}" > second.log 2>&1 || { cat second.log; echo "FAIL: the resumed run failed"; exit 1; }
cat second.log
grep -q "(resumed from ckpt)" second.log || { echo "FAIL: the rerun did not resume"; exit 1; }
steps=$(grep -v '"eval"' m.jsonl | python3 -c 'import json,sys; print(" ".join(str(json.loads(l)["step"]) for l in sys.stdin))')
[ "$steps" = "1 2 3" ] || { echo "FAIL: metrics steps '$steps', wanted '1 2 3'"; exit 1; }
echo PASS
