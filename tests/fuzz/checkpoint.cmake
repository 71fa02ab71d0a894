# Checkpoint readers (exec/io): safetensors bytes, and the JSON of distributed manifests and
# single-process state files, each loaded as a tiny real checkpoint (tests/fuzz/checkpoint_fuzz.h).
# Seeds: tests/fuzz/corpus/checkpoint_* (files of a real tiny checkpoint). Linked with eellm_exec_io only
# (the sanitizer build compiles just that).
add_library(eellm_fuzz_checkpoint_common OBJECT ${CMAKE_CURRENT_SOURCE_DIR}/checkpoint_fuzz_common.cpp)
target_link_libraries(eellm_fuzz_checkpoint_common PRIVATE eellm_exec_io eellm_warnings)
target_compile_definitions(eellm_fuzz_checkpoint_common PRIVATE EELLM_BINARY_DIR="${PROJECT_BINARY_DIR}")
foreach(surface safetensors manifest)
  eellm_add_fuzzer(checkpoint_${surface} ${CMAKE_CURRENT_SOURCE_DIR}/checkpoint_${surface}.cpp
                   CORPUS ${CMAKE_CURRENT_SOURCE_DIR}/corpus/checkpoint_${surface} RUNS 2000
                   LIBS eellm_fuzz_checkpoint_common eellm_exec_io)
endforeach()

# A slice of the executor's fuzz campaign (scripts/fuzz-campaign-io.py: checkpoints through eval/
# generate/train --resume, serve, options; docs/reliability.md): 10 fresh inputs per surface with a
# fixed seed, through the real binary (label cli: the sanitizer tree does not build eellm).
if(TARGET eellm)
  add_test(NAME fuzz.campaign_io_slice
           COMMAND python3 ${PROJECT_SOURCE_DIR}/scripts/fuzz-campaign-io.py --eellm $<TARGET_FILE:eellm> --count 10
                   --jobs 2 --seed 1 --work ${CMAKE_CURRENT_BINARY_DIR}/campaign-io)
  set_tests_properties(fuzz.campaign_io_slice PROPERTIES LABELS cli TIMEOUT 900)
endif()
