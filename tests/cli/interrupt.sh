#!/usr/bin/env bash
# interrupt.sh CMD ARGS...: runs the command in the background, waits until it has installed a SIGINT
# handler (bit 2 of SigCgt in /proc/PID/status; at most 30 s), waits EELLM_INTERRUPT_AFTER seconds
# more (default 0.2), sends one SIGINT, and exits with the
# command's status. A fixed delay is not enough: a background job of a non-interactive shell
# ignores SIGINT until the program installs its handler, and a loaded machine may take seconds.
set -u
"$@" &
pid=$!
for _ in $(seq 300); do
  mask=$(awk '/^SigCgt:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || break
  [ -n "$mask" ] && (( (16#$mask >> 1) & 1 )) && break
  sleep 0.1
done
sleep "${EELLM_INTERRUPT_AFTER:-0.2}"  # into the search, past start-up
kill -INT "$pid" 2>/dev/null
wait "$pid"
