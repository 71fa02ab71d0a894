# A fixed-seed slice of the fuzz campaign (scripts/fuzz-campaign.py): 2 fresh inputs per surface
# (scenario YAML into describe/simulate/plan/sweep/compare, Megatron lines into convert, traces into
# compare-trace) through the built eellm binary. Each eellm process costs ~0.5 s to start, so the
# campaign proper (thousands of inputs) is a release check, not CI; docs/reliability.md.
find_package(Python3 REQUIRED COMPONENTS Interpreter)
add_test(NAME fuzz.campaign_slice
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/scripts/fuzz-campaign.py --eellm $<TARGET_FILE:eellm>
                 --seed 1 --runs 2 --jobs 1 --timeout 120 --keep ${CMAKE_CURRENT_BINARY_DIR}/campaign-findings)
# Label cli, not fuzz: it drives the eellm binary, which the sanitizer build (scripts/test.sh, -L fuzz) does not build.
set_tests_properties(fuzz.campaign_slice PROPERTIES LABELS cli TIMEOUT 900)
