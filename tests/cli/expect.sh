#!/usr/bin/env bash
# expect.sh RC REGEX [--not REGEX] -- COMMAND...: runs COMMAND, passes when it exits with RC and its
# combined output matches the extended regex REGEX (and not the --not regex). Prints the output
# on failure so ctest --output-on-failure shows why.
set -u
rc_want=$1; re=$2; shift 2
not_re=""
if [ "${1:-}" = "--not" ]; then not_re=$2; shift 2; fi
[ "${1:-}" = "--" ] && shift
out=$("$@" 2>&1); rc=$?
fail=""
[ "$rc" -eq "$rc_want" ] || fail="exit code $rc, wanted $rc_want"
echo "$out" | grep -Eq -- "$re" || fail="${fail:+$fail; }output does not match /$re/"
if [ -n "$not_re" ] && echo "$out" | grep -Eq -- "$not_re"; then fail="${fail:+$fail; }output matches /$not_re/"; fi
if [ -n "$fail" ]; then
  printf '%s\n--- command: %s\n--- output:\n%s\n' "$fail" "$*" "$out"
  exit 1
fi
exit 0
