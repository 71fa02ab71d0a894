#!/usr/bin/env bash
# mpirun.sh ARGS...: runs `mpirun ARGS...` (the launcher is $EELLM_MPIRUN, default mpirun) and
# reports how it ended. SIGINT or SIGTERM received while it runs is passed on to mpirun (as SIGTERM:
# Open MPI then terminates every rank), and the script says so and exits 130 (SIGINT) or 143
# (SIGTERM), the shell's convention, instead of mpirun's silent exit 1. An mpirun killed by a signal
# is named too. scripts/fidelity.sh and scripts/demo.sh start their MPI runs through it.
set -u
launcher=${EELLM_MPIRUN:-mpirun}
got=""
"$launcher" "$@" &
pid=$!
trap 'got=INT; kill -TERM "$pid" 2>/dev/null' INT
trap 'got=TERM; kill -TERM "$pid" 2>/dev/null' TERM
rc=0
while :; do
  wait "$pid"
  rc=$?
  kill -0 "$pid" 2>/dev/null || break  # wait returned for a trapped signal: mpirun is still stopping
done
if [ -n "$got" ]; then
  echo "mpirun.sh: SIG$got received; stopped $launcher (it exited with status $rc) — the run did not finish" >&2
  [ "$got" = INT ] && exit 130 || exit 143
fi
if [ "$rc" -gt 128 ]; then
  echo "mpirun.sh: $launcher was killed by signal $((rc - 128)) ($(kill -l $((rc - 128)) 2>/dev/null || echo ?))" >&2
fi
exit "$rc"
