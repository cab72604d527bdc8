# cmake -DCOMMAND=<mpirun ... abort_rank, ;-separated> -P expect_abort.cmake
# Passes when the job ends within 60 s with a non-zero status and rank 1's message; fails when it
# succeeds, hangs (killed after 60 s) or loses the message.
execute_process(COMMAND ${COMMAND} TIMEOUT 60 RESULT_VARIABLE rc OUTPUT_VARIABLE out
                ERROR_VARIABLE err)
set(all "${out}${err}")
if(rc MATCHES "timeout" OR rc MATCHES "[Tt]erminated")
  message(FATAL_ERROR "the job did not stop within 60 s after rank 1 threw (${rc}):\n${all}")
endif()
if(rc EQUAL 0)
  message(FATAL_ERROR "the job exited 0 although rank 1 threw:\n${all}")
endif()
if(NOT all MATCHES "rank 1 of [0-9]+ stops the job: \\[abort_rank\\] rank 1 gives up on purpose")
  message(FATAL_ERROR "the job failed (${rc}) without rank 1's message:\n${all}")
endif()
message(STATUS "the job stopped with status ${rc} and rank 1's message")
