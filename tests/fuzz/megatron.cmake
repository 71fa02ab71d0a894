# The Megatron/EE-LLM command-line importer (fuzz_megatron.cpp); seeds: launch scripts and command lines.
eellm_add_fuzzer(megatron ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_megatron.cpp
                 CORPUS ${CMAKE_CURRENT_SOURCE_DIR}/corpus/megatron RUNS 3000 LIBS eellm_model)
set_tests_properties(fuzz.megatron PROPERTIES ENVIRONMENT "EELLM_SCENARIOS=${PROJECT_SOURCE_DIR}/scenarios")
