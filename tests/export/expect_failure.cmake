# Runs COMMAND (a ;-list); passes when it exits non-zero and its stderr matches EXPECT.
execute_process(COMMAND ${COMMAND} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0)
  message(FATAL_ERROR "expected a failure, but the command succeeded:\n${out}${err}")
endif()
if(NOT err MATCHES "${EXPECT}")
  message(FATAL_ERROR "exit code ${rc}, but stderr does not match '${EXPECT}':\n${err}")
endif()
message(STATUS "failed as expected (exit ${rc}): ${err}")
