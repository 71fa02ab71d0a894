# [reliability] Hostile input never crashes eellm (docs/reliability.md): each class of the issue's
# examples, through every entry point, gets exit 1 and an error naming the field or file. The inputs
# are tiny-ee (or ee-llm-1.3b) with one line changed by sed, written to the work folder.
set(TINY ${PROJECT_SOURCE_DIR}/scenarios/tiny-ee.yaml)
set(B13 ${PROJECT_SOURCE_DIR}/scenarios/ee-llm-1.3b.yaml)

# eellm_hostile_test(NAME RC REGEX SED_SCRIPT SOURCE COMMAND...): writes NAME.yaml = sed SED_SCRIPT
# SOURCE, then runs `eellm COMMAND... NAME.yaml` (the file goes last; {} in COMMAND stands for it).
function(eellm_hostile_test name rc regex sed_script source)
  string(REPLACE "{}" "${name}.yaml" cmd "${ARGN}")
  if(cmd STREQUAL "${ARGN}")
    set(cmd "${ARGN} ${name}.yaml")
  endif()
  string(REPLACE ";" " " cmd "${cmd}")
  string(REPLACE ";" "$<SEMICOLON>" sed_script "${sed_script}")  # not a CMake list separator
  eellm_cli_test(reliability.${name} ${rc} "${regex}" --
    bash -c "sed -e '${sed_script}' ${source} > ${name}.yaml && $<TARGET_FILE:eellm> ${cmd}")
endfunction()

# 1. Numbers checked for range and overflow, the field named; products in 64 bits.
eellm_hostile_test(tp_pp_overflow 1 "tensor_model_parallel_size × pipeline_model_parallel_size \\(65536 × 65536\\) is larger than 1048576"
  "s/tensor_model_parallel_size: 1/tensor_model_parallel_size: 65536/;s/pipeline_model_parallel_size: 1/pipeline_model_parallel_size: 65536/"
  ${TINY} describe)
eellm_hostile_test(micro_dp_overflow 1 "micro_batch_size × data_parallel_size \\(16777216 × 65536\\)"
  "s/micro_batch_size: 8/micro_batch_size: 16777216/;s/^  world_size: 1/  data_parallel_size: 65536\\n  world_size: 0/"
  ${TINY} simulate)
eellm_hostile_test(vocab_tp_overflow 1 "make_vocab_size_divisible_by × tensor_model_parallel_size \\(65536 × 65536\\)"
  "s/make_vocab_size_divisible_by: 1/make_vocab_size_divisible_by: 65536/;s/tensor_model_parallel_size: 1/tensor_model_parallel_size: 65536/"
  ${TINY} describe)
eellm_hostile_test(pp_vp_overflow 1 "virtual_pipeline_model_parallel_size \\(1000000\\) is larger than 64"
  "s/pipeline_model_parallel_size: 1/pipeline_model_parallel_size: 65536\\n  virtual_pipeline_model_parallel_size: 1000000/"
  ${TINY} describe)
eellm_hostile_test(global_batch_2_30 1 "training.global_batch_size \\(1073741824\\) is larger than 16777216"
  "s/global_batch_size: 32/global_batch_size: 1073741824/" ${TINY} simulate)
eellm_hostile_test(microbatches_2_21 1 "training.global_batch_size \\(2097152\\) makes 2097152 microbatches per iteration, more than 1048576"
  "s/global_batch_size: 32/global_batch_size: 2097152/;s/micro_batch_size: 8/micro_batch_size: 1/" ${TINY} simulate)
eellm_hostile_test(layers_1e6 1 "model.num_layers \\(1000000\\) is larger than 4096 layers"
  "s/num_layers: 6/num_layers: 1000000/" ${TINY} plan --gpus 1 {})
eellm_hostile_test(vocab_2_31 1 "model.vocab_size \\(2147483647\\) is larger than 16777216"
  "s/vocab_size: 256 /vocab_size: 2147483647/" ${TINY} describe)
eellm_hostile_test(seq_2_31 1 "model.seq_length \\(2147483647\\) is larger than 1048576"
  "s/seq_length: 256/seq_length: 2147483647/" ${TINY} describe)
eellm_hostile_test(bandwidth_negative 1 "cluster.intra_node.bandwidth_GBps \\(-5\\) must be in \\[0.001, 1e\\+06\\]"
  "s/^  profile: local-cpu/&\\n  gpus_per_node: 2\\n  intra_node: {bandwidth_GBps: -5, latency_us: 1}/" ${TINY} simulate)
eellm_hostile_test(bandwidth_denormal 1 "cluster.device.memory_bandwidth_GBps \\(4.94066e-324\\) must be in"
  "s/^  profile: local-cpu/&\\n  device: {base: cpu-local, memory_bandwidth_GBps: 5e-324}/" ${TINY} describe)
eellm_hostile_test(bandwidth_minus_zero 1 "cluster.device.memory_bandwidth_GBps \\(-0\\) must be in"
  "s/^  profile: local-cpu/&\\n  device: {base: cpu-local, memory_bandwidth_GBps: -0}/" ${TINY} compare {} tiny-ee)
eellm_hostile_test(kernel_launch_1e30 1 "cluster.device.kernel_launch_us \\(1e\\+30\\) must be in \\[0, 1e\\+07\\]"
  "s/^  profile: local-cpu/&\\n  device: {base: cpu-local, kernel_launch_us: 1e30}/" ${TINY} simulate)
eellm_hostile_test(peak_negative 1 "cluster.device.peak_tflops_fp32 \\(-312\\) must be positive"
  "s/^  profile: local-cpu/&\\n  device: {base: cpu-local, peak_tflops_fp32: -312}/" ${TINY} convert --to-megatron)
eellm_hostile_test(memory_negative 1 "cluster.device.memory_GiB \\(-1\\) must be in \\(0, 1e\\+06\\]"
  "s/^  profile: local-cpu/&\\n  device: {base: cpu-local, memory_GiB: -1}/" ${TINY} train --steps 1 {})
eellm_hostile_test(lr_negative 1 "training.lr \\(-5\\) must not be negative|training.lr \\(-5\\) must be in"
  "s/^  lr: 1.0e-3/  lr: -5/" ${TINY} train --steps 1 {})
eellm_hostile_test(adam_beta1_7 1 "training.adam_beta1 \\(7\\) must be in \\[0, 1\\)"
  "s/adam_beta1: 0.9/adam_beta1: 7/" ${TINY} sweep {} --vary training.lr=0.001)
eellm_hostile_test(no_cluster 1 "cluster: no device \\(the scenario has no cluster section" "/^cluster:/,+1d" ${TINY} describe)
eellm_hostile_test(name_bad_utf8 1 "name: not valid UTF-8" "s/^name: tiny-ee/name: tiny\\xc3\\x28/" ${TINY} describe --format json {})
# sweep refuses what simulate refuses (here: one exit, two weights), with the same words.
eellm_hostile_test(sweep_refuses_like_simulate 1 "exits.exit_layer_weight has 2 entries. give one per exit \\(1\\)"
  "s/exit_layer_nums: \\[2, 4\\]/exit_layer_nums: [2]/" ${TINY} sweep {} --vary training.lr=0.001,0.002)
eellm_hostile_test(simulate_refuses_like_sweep 1 "exits.exit_layer_weight has 2 entries. give one per exit \\(1\\)"
  "s/exit_layer_nums: \\[2, 4\\]/exit_layer_nums: [2]/" ${TINY} simulate)
eellm_cli_test(reliability.sweep_point_bounds 0 "^1048576	-	parallel.tensor_model_parallel_size \\(1048576\\) is larger than 65536" --
  ${E} sweep ee-llm-1.3b --vary parallel.tensor_model_parallel_size=1,1048576)

# Profiles: a symlink loop, a 300-character name, a FIFO, /dev/zero and a directory are refused by type.
string(REPEAT "p" 300 LONG)
eellm_hostile_test(profile_symlink_loop 1 "cluster profile '[./]*loop.yaml': Too many levels of symbolic links"
  "s|^  profile: local-cpu|  profile: ./loop.yaml|" ${TINY} describe)
set_property(TEST cli.reliability.profile_symlink_loop APPEND PROPERTY FIXTURES_REQUIRED loop)
add_test(NAME cli.reliability.make_loop COMMAND ln -sfn loop.yaml loop.yaml WORKING_DIRECTORY ${WORK})
set_tests_properties(cli.reliability.make_loop PROPERTIES FIXTURES_SETUP loop LABELS cli)
eellm_hostile_test(profile_long_name 1 "File name too long" "s|^  profile: local-cpu|  profile: ./${LONG}.yaml|" ${TINY} describe)
eellm_cli_test(reliability.profile_fifo 1 "cluster profile '[./]*fifo.yaml' is a FIFO \\(named pipe\\), not a regular file" --
  bash -c "rm -f fifo.yaml && mkfifo fifo.yaml && sed 's|^  profile: local-cpu|  profile: ./fifo.yaml|' ${TINY} > f.yaml && ${E} describe f.yaml")
eellm_cli_test(reliability.profile_directory 1 "device profile '.*/d.yaml' is a directory, not a regular file" --
  bash -c "mkdir -p d.yaml && ${E} plan tiny-ee --gpus 1 --device d.yaml")
eellm_cli_test(reliability.device_dev_zero 1 "device profile '/dev/zero' is a character device, not a regular file" --
  ${E} plan ee-llm-1.3b --gpus 16 --device /dev/zero)
eellm_cli_test(reliability.scenario_dev_zero 1 "is a character device" -- ${E} simulate /dev/zero)
# 100,000 unknown keys: a few lines of errors (the first 20, then a count), not 29 s of quadratic checks.
eellm_cli_test(reliability.yaml_100k_keys 1 "and 99980 more error\\(s\\)" --
  bash -c "{ cat ${TINY} && seq -f '  k%g: 1' 1 100000 $<SEMICOLON> } > k.yaml && ${E} describe k.yaml")

# 3. No exception escapes: a reader that throws becomes "error: <what>" and exit 1, per entry point.
eellm_cli_test(reliability.throw_describe 1 "^error: injected fault \\(EELLM_FAULT_INJECT=reader\\) reading scenario" --
  env EELLM_FAULT_INJECT=reader ${E} describe ${TINY})
eellm_cli_test(reliability.throw_compare_trace 1 "^error: injected fault .* reading trace" --
  env EELLM_FAULT_INJECT=reader ${E} compare-trace a.json b.json)
eellm_cli_test(reliability.throw_convert 1 "^error: injected fault .* reading command line file" --
  env EELLM_FAULT_INJECT=reader ${E} convert --from-megatron m.sh)

# 4. CLI arguments: deeply nested --exit-rates JSON, absurd numbers.
eellm_cli_test(reliability.exit_rates_deep 1 "nested deeper than 8 levels" --
  bash -c "head -c 100000 /dev/zero | tr '\\0' '[' > deep.json && ${E} simulate ee-llm-7b --mode inference --exit-rates deep.json")
eellm_cli_test(reliability.plan_gpus_2_28 1 "--gpus \\(268435456\\) must be in 1..1048576" -- ${E} plan ee-llm-1.3b --gpus 268435456)
eellm_cli_test(reliability.plan_negative_top 1 "--top \\(-3\\) must be in 1..1000000" -- ${E} plan ee-llm-1.3b --gpus 16 --top -3)

# 5. Megatron command lines: arithmetic that traps, nesting that recurses, doubling variables.
eellm_cli_test(reliability.megatron_div_min 1 "the result overflows a 64-bit integer" --
  bash -c "printf 'L=$(( (-9223372036854775807 - 1) / -1 ))\\npython pretrain_gpt.py --num-layers $L\\n' > m1.sh && ${E} convert --from-megatron m1.sh")
eellm_cli_test(reliability.megatron_mod_minus_one 1 "--num-layers" --not "Floating point" --
  bash -c "printf 'L=$(( (-9223372036854775807 - 1) %% -1 ))\\npython pretrain_gpt.py --num-layers $L\\n' > m2.sh && ${E} convert --from-megatron m2.sh")
eellm_cli_test(reliability.megatron_deep_parens 1 "nested deeper than 64 levels" --
  bash -c "{ printf 'L=$((' && head -c 50000 /dev/zero | tr '\\0' '(' && printf 1 && head -c 50000 /dev/zero | tr '\\0' ')' && echo '))' && echo 'python p.py --num-layers $L' $<SEMICOLON> } > m3.sh && ${E} convert --from-megatron m3.sh")
eellm_cli_test(reliability.megatron_doubling 1 "the variable expansions exceed 4 MiB" --
  bash -c "{ echo A=xxxxxxxxxxxxxxxx && yes 'A=$A$A' | head -40 && echo 'python p.py --num-layers 2' $<SEMICOLON> } > m4.sh && ${E} convert --from-megatron m4.sh")

# 6. Traces into compare-trace: negative and out-of-range times, a side without ranks, special files.
eellm_cli_test(reliability.trace_negative_time 1 "traceEvents\\[[0-9]+\\].ts: time -5 µs is negative" --
  bash -c "${E} simulate tiny-ee-pp2 --trace ok.json >/dev/null && echo '[{\"ph\":\"X\",\"pid\":0,\"ts\":-5,\"dur\":1}]' > neg.json && ${E} compare-trace ok.json neg.json")
eellm_cli_test(reliability.trace_huge_time 1 "time 1e\\+300 µs is out of range" --
  bash -c "${E} simulate tiny-ee-pp2 --trace ok.json >/dev/null && echo '[{\"ph\":\"X\",\"pid\":0,\"ts\":0,\"dur\":1e300}]' > big.json && ${E} compare-trace ok.json big.json")
eellm_cli_test(reliability.trace_no_ranks 1 "the measured trace none.json has no ranks with slices" --
  bash -c "${E} simulate tiny-ee-pp2 --trace ok.json >/dev/null && echo '{\"traceEvents\": []}' > none.json && ${E} compare-trace ok.json none.json")
eellm_cli_test(reliability.trace_pid_1e8 1 "pid 100000000 is not a pipeline rank" --
  bash -c "echo '[{\"ph\":\"X\",\"pid\":100000000,\"ts\":0,\"dur\":1}]' > pid.json && ${E} compare-trace pid.json pid.json")
eellm_cli_test(reliability.trace_fifo 1 "trace 'tfifo.json' is a FIFO" --
  bash -c "rm -f tfifo.json && mkfifo tfifo.json && ${E} compare-trace tfifo.json tfifo.json")
eellm_cli_test(reliability.trace_dev_zero 1 "trace '/dev/zero' is a character device" -- ${E} compare-trace /dev/zero /dev/zero)
eellm_cli_test(reliability.trace_directory 1 "trace '.' is a directory" -- ${E} compare-trace . .)
