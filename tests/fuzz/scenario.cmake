# The scenario reader + check_scenario + describe, and simulate of small valid inputs (fuzz_scenario.cpp).
# Seeds: shipped scenarios (tests/fuzz/corpus/scenario/). 1,500 inputs: well under a minute on one core.
eellm_add_fuzzer(scenario ${CMAKE_CURRENT_SOURCE_DIR}/fuzz_scenario.cpp
                 CORPUS ${CMAKE_CURRENT_SOURCE_DIR}/corpus/scenario RUNS 1500 LIBS eellm_sim eellm_model)
set_tests_properties(fuzz.scenario PROPERTIES ENVIRONMENT "EELLM_SCENARIOS=${PROJECT_SOURCE_DIR}/scenarios")
