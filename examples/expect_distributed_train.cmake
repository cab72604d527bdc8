# cmake -DMPIRUN=<mpirun;--oversubscribe> -DNP=<-np> -DTRAIN=<train_multihead> -DOUT_DIR=<dir>
#       -P expect_distributed_train.cmake
# train_multihead --distributed on 2 MPI ranks, a tiny model for 6 steps:
#  1. 3 steps and stop: rank 0 writes the checkpoint, metrics and TensorBoard files; rank 1,
#     started with its own --out-dir (an MPMD job: "a : b"), writes nothing there.
#  2. --resume to step 6 (rank 1 reads a copy of the checkpoint, and again writes nothing).
#  3. An uninterrupted 6-step run: the same losses and bit-identical weights and optimizer state.
#  4. A global batch of 1 line on 2 ranks: rank 1's share is empty every step, and it still joins
#     the gradient all-reduce (a line of weight 0).
#  5. Resuming on another number of processes, or without --distributed, is a usage error
#     (exit 2), and mpirun without --distributed is refused.
file(REMOVE_RECURSE ${OUT_DIR})
file(MAKE_DIRECTORY ${OUT_DIR})
set(model --eval-every 3 --embed-dim 16 --heads 2 --layers 1 --experts 2 --top-k 1
          --expert-hidden 16 --val-fraction 0.02 --samples 0 --histogram-every 0)
set(args --steps 6 --batch-size 7 ${model})
set(a ${OUT_DIR}/a)  # rank 0's out-dir
set(b ${OUT_DIR}/b)  # rank 1's in step 1: must stay absent
set(c ${OUT_DIR}/c)  # rank 1's in step 2: a copy of a's checkpoint, must stay as it was
set(d ${OUT_DIR}/d)  # the uninterrupted run

include(${CMAKE_CURRENT_LIST_DIR}/expect_train_helpers.cmake)

# 1. Three steps; rank 1 is told another --out-dir, which must stay absent.
run("^0$" "3 steps on 2 ranks" ${MPIRUN} ${NP} 1 ${TRAIN} ${args} --distributed --stop-after 3
    --out-dir ${a} : ${NP} 1 ${TRAIN} ${args} --distributed --stop-after 3 --out-dir ${b})
expect_output("3 steps on 2 ranks" "data-parallel on 2 ranks")
expect_step(${a} 3)
foreach(f step-000003.model.safetensors step-000003.optim.safetensors metrics.csv tensorboard)
  if(NOT EXISTS ${a}/${f})
    message(FATAL_ERROR "rank 0 did not write ${a}/${f}")
  endif()
endforeach()
if(EXISTS ${b})
  message(FATAL_ERROR "rank 1 wrote into its --out-dir ${b}")
endif()

# Runs that reach step 6 exit 1: 6 steps do not take the model below the bigram baseline (the
# program's verdict, not what is tested here).
set(done "^[01]$")

# 2. Resume to step 6; rank 1 reads the checkpoint from c, a copy, and must leave c as it is.
file(COPY ${a}/ DESTINATION ${c})
file(GLOB_RECURSE c_before RELATIVE ${c} ${c}/*)
run(${done} "resume on 2 ranks" ${MPIRUN} ${NP} 1 ${TRAIN} --distributed --resume --samples 0
    --out-dir ${a} : ${NP} 1 ${TRAIN} --distributed --resume --samples 0 --out-dir ${c})
expect_output("resume on 2 ranks" "resumed from ${a}/step-000003.model.safetensors at step 3")
expect_step(${a} 6)
expect_step(${c} 3)
file(GLOB_RECURSE c_after RELATIVE ${c} ${c}/*)
if(NOT c_before STREQUAL c_after)
  message(FATAL_ERROR "rank 1 changed ${c}: before ${c_before}, after ${c_after}")
endif()

# 3. The same 6 steps uninterrupted: the resumed run must match it bit for bit.
run(${done} "6 steps on 2 ranks" ${MPIRUN} ${NP} 2 ${TRAIN} ${args} --distributed --out-dir ${d})
expect_same_run(${a} ${d} step-000006)

# 4. Rank 1 without lines.
run(${done} "a batch of 1 line on 2 ranks" ${MPIRUN} ${NP} 2 ${TRAIN} --steps 3 --batch-size 1 ${model}
    --distributed --no-tensorboard --out-dir ${OUT_DIR}/e)
expect_step(${OUT_DIR}/e 3)

# 5. The checkpoint of 2 ranks refuses another job shape; mpirun needs --distributed.
run("^2$" "resume on 1 process" ${TRAIN} --resume --out-dir ${a})
expect_output("resume on 1 process" "was written by 2 processes (--distributed)")
run("^[1-9]" "resume on 1 rank" ${MPIRUN} ${NP} 1 ${TRAIN} --distributed --resume --out-dir ${a})
expect_output("resume on 1 rank" "with mpirun -np 2 ... --distributed")
run("^[1-9]" "mpirun without --distributed" ${MPIRUN} ${NP} 2 ${TRAIN} ${args} --out-dir ${d})
expect_output("mpirun without --distributed" "but without --distributed")
