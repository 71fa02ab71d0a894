# The Chrome trace reader and compare (fuzz_trace.cpp); seeds: small predicted traces.
eellm_add_fuzzer(trace ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_trace.cpp
                 CORPUS ${CMAKE_CURRENT_SOURCE_DIR}/corpus/trace RUNS 3000 LIBS eellm_sim eellm_model)
