# Trains train_multihead (TRAIN, a path) for one step of a tiny model into OUT_DIR, then edits
# the checkpoint -- SETTING=VALUE in the model file's metadata (a same-length edit of the
# safetensors header), or STEP=VALUE in checkpoint.json -- and checks that --resume refuses it
# with exit status EXPECTED and a message containing MATCH, instead of crashing.
file(REMOVE_RECURSE ${OUT_DIR})
file(MAKE_DIRECTORY ${OUT_DIR})
set(words "")
foreach(w alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike
          november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee zulu)
  string(APPEND words "${w}\n${w}s\nun${w}\n")
endforeach()
file(WRITE ${OUT_DIR}/words.txt "${words}")
execute_process(
  COMMAND ${TRAIN} --data ${OUT_DIR}/words.txt --val-fraction 0.3 --steps 4 --stop-after 1
          --batch-size 4 --eval-every 1 --embed-dim 8 --heads 2 --layers 1 --experts 2 --top-k 1
          --expert-hidden 8 --samples 0 --out-dir ${OUT_DIR}/run
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the first run failed (${rc}):\n${out}${err}")
endif()
if(DEFINED SETTING)
  file(GLOB model ${OUT_DIR}/run/step-*.model.safetensors)
  # LC_ALL=C: sed edits the header's bytes and leaves the binary data after it alone.
  execute_process(COMMAND env LC_ALL=C sed -i
                          "s/\"train.${SETTING}\":\"[0-9]\"/\"train.${SETTING}\":\"${VALUE}\"/"
                          ${model} RESULT_VARIABLE rc)
  file(STRINGS ${model} edited REGEX "\"train.${SETTING}\":\"${VALUE}\"")
  if(NOT rc EQUAL 0 OR NOT edited)
    message(FATAL_ERROR "could not set train.${SETTING} to ${VALUE} in ${model}")
  endif()
else()
  file(READ ${OUT_DIR}/run/checkpoint.json pointer)
  string(REGEX REPLACE "\"step\": [0-9]+" "\"step\": ${STEP}" pointer "${pointer}")
  file(WRITE ${OUT_DIR}/run/checkpoint.json "${pointer}")
endif()
set(COMMAND ${TRAIN} --resume --out-dir ${OUT_DIR}/run)
include(${CMAKE_CURRENT_LIST_DIR}/../tools/gradcheck/expect_exit.cmake)
