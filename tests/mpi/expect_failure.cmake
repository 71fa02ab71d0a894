# Runs an MPI test binary that must FAIL (fault injection) and checks that it failed, within a
# time limit, with output matching REGEX. Variables: MPIEXEC NP EXE FILTER FAULT REGEX.
set(ENV{EELLM_TEST_FAULT} ${FAULT})
execute_process(
  COMMAND ${MPIEXEC} --oversubscribe --allow-run-as-root -np ${NP} ${EXE} --gtest_filter=${FILTER}
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 90)
set(all "${out}\n${err}")
message("${all}")
if(rc EQUAL 0)
  message(FATAL_ERROR "expected the job to fail (fault ${FAULT}), it exited 0")
endif()
if(rc MATCHES "timeout|Process terminated due to timeout")
  message(FATAL_ERROR "the job hung instead of failing (fault ${FAULT}): ${rc}")
endif()
if(NOT all MATCHES "${REGEX}")
  message(FATAL_ERROR "exit status ${rc}, but the output does not match '${REGEX}'")
endif()
message("fault ${FAULT}: job failed with status ${rc} and the expected message")
