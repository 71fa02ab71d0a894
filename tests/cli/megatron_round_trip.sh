#!/usr/bin/env bash
# megatron_round_trip.sh EELLM DATA_DIR: every EE-LLM launch script in DATA_DIR (synthetic, written
# for eellm's tests) through `eellm convert --from-megatron` → `eellm simulate` → `eellm convert
# --to-megatron`; the words after the Python script of the exported command must equal the
# original's, as bash itself expands both (torchrun replaced by a function that prints its words).
set -euo pipefail
eellm=$1; data=$2
script_words() {  # the words after the .py of the launch in $1
  ( torchrun() { local after=0; for w in "$@"; do [ $after = 1 ] && printf '%s\n' "$w"; [[ $w == *.py ]] && after=1; done; };
    set +eu; cd "$(dirname "$1")"; unset WORLD_SIZE; source "$1" )
}
ok=()
for script in "$data"/*.sh; do
  name=$(basename "$script" .sh)
  env -u WORLD_SIZE "$eellm" convert --from-megatron "$script" --device a100-80gb -o "$name.yaml" 2>"$name.warnings"
  "$eellm" simulate "$name.yaml" >"$name.simulate.txt"
  grep -q "iteration time" "$name.simulate.txt"
  "$eellm" convert --to-megatron "$name.yaml" >"$name.back.sh" 2>/dev/null
  if ! diff <(script_words "$script") <(script_words "$PWD/$name.back.sh") >"$name.diff"; then
    echo "flags differ for $name:"; cat "$name.diff"; exit 1
  fi
  ok+=("$name")
done
# A command line whose scenario has errors (an exit after layer 9 of 8): exit 1, nothing written.
rm -f bad.yaml
echo "torchrun x.py --num-layers 8 --hidden-size 64 --num-attention-heads 4 --seq-length 32 \
  --max-position-embeddings 32 --micro-batch-size 1 --pipeline-model-parallel-size 2 --exit-layer-nums 9" >bad.sh
if "$eellm" convert --from-megatron bad.sh -o bad.yaml 2>bad.err; then echo "bad.sh converted"; exit 1; fi
[ -e bad.yaml ] && { echo "bad.yaml written on error"; exit 1; }
grep -q "nothing written" bad.err
echo "flags equal after convert → simulate → export: ${ok[*]}, on error nothing written"
