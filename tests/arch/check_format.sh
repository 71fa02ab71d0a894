#!/usr/bin/env bash
# Fails, listing the files, when a tracked C++/CUDA source differs from what clang-format makes of it
# (.clang-format at the root; `clang-format -i FILE` fixes one). Skips with a reason without clang-format.
set -euo pipefail
root=${1:-$(git rev-parse --show-toplevel)}
cd "$root"
if ! command -v clang-format >/dev/null; then
  echo "check_format: clang-format is not installed (scripts/install-deps.sh installs it)" >&2
  exit 1
fi
mapfile -t files < <(git ls-files '*.cpp' '*.h' '*.cu' 2>/dev/null || find model sim exec fidelity gui cli tests \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' \))
bad=()
for f in "${files[@]}"; do
  clang-format --dry-run -Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
  printf 'check_format: %d of %d files are not formatted (clang-format -i FILE):\n' "${#bad[@]}" "${#files[@]}"
  printf '  %s\n' "${bad[@]}"
  exit 1
fi
echo "check_format: ${#files[@]} files formatted"
