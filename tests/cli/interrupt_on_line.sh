#!/usr/bin/env bash
# interrupt_on_line.sh REGEX CMD ARGS...: runs the command in the background with its stderr in a file,
# waits until a line of that stderr matches the extended REGEX (the command says it reached a phase,
# e.g. the planner's "enumerate" progress line), sends one SIGINT, prints the stderr and exits with
# the command's status. Ordering, not a delay: the signal arrives after the command reported the
# phase. Fails (exit 99) when the command ends before printing the line.
set -u
re=$1; shift
err=$(mktemp)
trap 'rm -f "$err"' EXIT
"$@" 2>"$err" &
pid=$!
until tr '\r' '\n' <"$err" | grep -Eq -- "$re"; do
  if ! kill -0 "$pid" 2>/dev/null; then
    cat "$err" >&2
    echo "interrupt_on_line.sh: the command ended before printing /$re/" >&2
    exit 99
  fi
  sleep 0.05
done
kill -INT "$pid"
wait "$pid"
rc=$?
cat "$err" >&2
exit "$rc"
