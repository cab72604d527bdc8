# cmake -DMPIRUN=<mpirun;--oversubscribe> -DNP=<-np> -DTRAIN=<train_multihead> -DOUT_DIR=<dir>
#       -P expect_expert_parallel_train.cmake
# train_multihead --distributed --expert-parallel on 2 MPI ranks (2 experts: one per rank), a tiny
# model for 6 steps:
#  1. 3 steps and stop, then --resume to step 6; an uninterrupted 6-step run writes bit-identical
#     model and optimizer files and the same metrics.
#  2. The checkpoint is the full model: one process loads it (--init-from) and scores it on the
#     validation split within 1e-3 of what the 2 ranks measured at step 6.
#  3. With --aux-coef 0, every step's loss is one process's (within 5e-6): the gradients, the
#     experts' ÷ world and the clipping by the global norm included.
#  4. A 1-line global batch (rank 1 always idle) runs, samples included.
#  5. Resuming it without --expert-parallel is a usage error (exit 2); so are --expert-parallel
#     without --distributed, and experts that do not divide by the ranks.
file(REMOVE_RECURSE ${OUT_DIR})
file(MAKE_DIRECTORY ${OUT_DIR})
set(model --eval-every 3 --embed-dim 16 --heads 2 --layers 2 --experts 2 --top-k 1
          --expert-hidden 16 --val-fraction 0.02 --samples 0 --histogram-every 0 --no-tensorboard)
set(args --steps 6 --batch-size 7 ${model} --distributed --expert-parallel)
set(a ${OUT_DIR}/a)  # stopped and resumed
set(d ${OUT_DIR}/d)  # uninterrupted

include(${CMAKE_CURRENT_LIST_DIR}/expect_train_helpers.cmake)
set(done "^[01]$")  # 6 steps do not beat the bigram baseline: exit 1 is the verdict, not a failure

# 1. Stop, resume, and the uninterrupted run.
run("^0$" "3 steps" ${MPIRUN} ${NP} 2 ${TRAIN} ${args} --stop-after 3 --out-dir ${a})
expect_output("3 steps" "expert-parallel: 1 of the 2 experts on each rank")
run(${done} "resume" ${MPIRUN} ${NP} 2 ${TRAIN} --distributed --expert-parallel --resume
    --samples 0 --out-dir ${a})
expect_output("resume" "resumed from ${a}/step-000003.model.safetensors at step 3")
run(${done} "6 steps" ${MPIRUN} ${NP} 2 ${TRAIN} ${args} --out-dir ${d})
expect_same_run(${a} ${d} step-000006)

# 2. One process loads the full checkpoint; its validation loss is the 2 ranks' at step 6.
run(${done} "one process from the checkpoint" ${TRAIN} ${model} --steps 1
    --init-from ${d}/step-000006.model.safetensors --out-dir ${OUT_DIR}/one)
string(REGEX MATCH "validation loss ([0-9]+)\\.([0-9]+)" m "${all}")
if(NOT m)
  message(FATAL_ERROR "one process did not score the checkpoint:\n${all}")
endif()
set(one "${CMAKE_MATCH_1}${CMAKE_MATCH_2}")
file(STRINGS ${d}/metrics.csv last REGEX "^6,")
string(REGEX MATCH "^6,[^,]*,[^,]*,([0-9]+)\\.([0-9]+)," m "${last}")
set(two "${CMAKE_MATCH_1}${CMAKE_MATCH_2}")
math(EXPR diff "${one} - ${two}")
if(diff GREATER 1000 OR diff LESS -1000)  # 1e-3: other row counts per product (see 3. below)
  message(FATAL_ERROR "validation loss: one process ${one}e-6, 2 ranks ${two}e-6")
endif()
message(STATUS "validation loss of the checkpoint: one process ${one}e-6, 2 ranks ${two}e-6")

# 3. The gradient is one process's: with --aux-coef 0 (the load-balancing term is each rank's own)
#    every step's train loss agrees with one process's within 5e-6 and the validation losses within 1e-3
#    (float sums in another order; metrics.csv keeps 6 decimals). The batch of 7 lines is 4 + 3.
run(${done} "--aux-coef 0 on 2 ranks" ${MPIRUN} ${NP} 2 ${TRAIN} ${args} --aux-coef 0
    --out-dir ${OUT_DIR}/e)
run(${done} "--aux-coef 0 on one process" ${TRAIN} --steps 6 --batch-size 7 ${model} --aux-coef 0
    --out-dir ${OUT_DIR}/f)
function(loss_columns path var)  # "step:train:val" per row, the losses in units of 1e-6
  file(STRINGS ${path} lines REGEX "^[0-9]")
  set(out "")
  foreach(line ${lines})
    string(REGEX MATCH "^([0-9]+),[^,]*,([0-9]+)\\.([0-9]+),(([0-9]+)\\.([0-9]+))?," m "${line}")
    set(val "${CMAKE_MATCH_5}${CMAKE_MATCH_6}")
    if(val STREQUAL "")
      set(val none)  # no evaluation at this step
    endif()
    list(APPEND out "${CMAKE_MATCH_1}:${CMAKE_MATCH_2}${CMAKE_MATCH_3}:${val}")
  endforeach()
  set(${var} "${out}" PARENT_SCOPE)
endfunction()
loss_columns(${OUT_DIR}/e/metrics.csv two)
loss_columns(${OUT_DIR}/f/metrics.csv one)
list(LENGTH two n)
if(NOT n EQUAL 6)
  message(FATAL_ERROR "expected 6 rows in ${OUT_DIR}/e/metrics.csv: ${two}")
endif()
foreach(i RANGE 5)
  list(GET two ${i} a_row)
  list(GET one ${i} b_row)
  string(REPLACE ":" ";" a_row "${a_row}")
  string(REPLACE ":" ";" b_row "${b_row}")
  # Train losses within 5e-6. Validation within 1e-3: each rank evaluates its own chunks, so the
  # products have other row counts than one process's, which below AVX512_CORE gemm:jit and the
  # SSE4.1 kernels block differently, and a token whose two best experts are nearly tied can then
  # pick the other one (seen: 4.368224 against 4.368249 with ONEDNN_MAX_CPU_ISA=AVX2, 4.463533
  # against 4.463423 with SSE41).
  foreach(col 1 2)
    list(GET a_row ${col} x)
    list(GET b_row ${col} y)
    if(col EQUAL 1)
      set(tolerance 5)
    else()
      set(tolerance 1000)
    endif()
    if(NOT x STREQUAL "none" OR NOT y STREQUAL "none")
      math(EXPR diff "${x} - ${y}")
      if(diff GREATER ${tolerance} OR diff LESS -${tolerance})
        message(FATAL_ERROR "--aux-coef 0: 2 ranks ${two}, one process ${one} (units of 1e-6)")
      endif()
    endif()
  endforeach()
endforeach()
message(STATUS "--aux-coef 0: 2 ranks = one process (train within 5e-6, validation 1e-3): ${two}")

# A global batch of 1 line: rank 1's share is empty every step, and it still takes part in every
# exchange of the layer (a line of weight 0).
string(REPLACE "--samples;0" "--samples;2" sampling "${model}")  # sampling is collective too
run(${done} "a batch of 1 line" ${MPIRUN} ${NP} 2 ${TRAIN} --steps 3 --batch-size 1 ${sampling}
    --distributed --expert-parallel --out-dir ${OUT_DIR}/g)
expect_output("a batch of 1 line" "2 samples at temperature")
expect_step(${OUT_DIR}/g 3)

# 4. Usage errors.
run("^2$" "resume without --expert-parallel" ${MPIRUN} ${NP} 2 ${TRAIN} --distributed --resume
    --out-dir ${a})
expect_output("resume without --expert-parallel" "--distributed --expert-parallel")
run("^2$" "--expert-parallel alone" ${TRAIN} ${model} --expert-parallel --out-dir ${OUT_DIR}/x)
expect_output("--expert-parallel alone" "it needs --distributed")
run("^[1-9]" "3 experts on 2 ranks" ${MPIRUN} ${NP} 2 ${TRAIN} --steps 2 --batch-size 7
    --eval-every 3 --embed-dim 16 --heads 2 --layers 1 --experts 3 --top-k 1 --expert-hidden 16
    --distributed --expert-parallel --out-dir ${OUT_DIR}/y)
expect_output("3 experts on 2 ranks" "must divide by the 2 processes")
