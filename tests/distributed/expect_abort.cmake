# cmake -DCOMMAND=<mpirun ... abort_rank [--kill], ;-separated> -DEXPECT=<regex> -P expect_abort.cmake
# Passes when the job ends within 60 s with a non-zero status and output matching EXPECT (rank 1's
# message, or mpirun's report of the killed rank); fails when it succeeds, hangs (killed after
# 60 s) or says nothing about rank 1.
execute_process(COMMAND ${COMMAND} TIMEOUT 60 RESULT_VARIABLE rc OUTPUT_VARIABLE out
                ERROR_VARIABLE err)
set(all "${out}${err}")
if(rc MATCHES "timeout" OR rc MATCHES "[Tt]erminated")
  message(FATAL_ERROR "the job did not stop within 60 s after rank 1 failed (${rc}):\n${all}")
endif()
if(rc EQUAL 0)
  message(FATAL_ERROR "the job exited 0 although rank 1 failed:\n${all}")
endif()
if(NOT all MATCHES "${EXPECT}")
  message(FATAL_ERROR "the job failed (${rc}) without the expected report (${EXPECT}):\n${all}")
endif()
message(STATUS "the job stopped with status ${rc} and the expected report")
