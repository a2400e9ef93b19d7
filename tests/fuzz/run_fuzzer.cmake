# ctest fuzz/<target>: runs FUZZER for SECONDS on a temporary copy of CORPUS
# (new inputs land in the copy, which is removed), crash inputs go to CRASHES.
# cmake -DFUZZER=... -DCORPUS=... -DCRASHES=... -DSECONDS=15 -P run_fuzzer.cmake
foreach(v FUZZER CORPUS CRASHES SECONDS)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "run_fuzzer.cmake: -D${v}= missing")
  endif()
endforeach()

string(RANDOM LENGTH 8 tag)
get_filename_component(name ${FUZZER} NAME)
set(work "${CRASHES}/../corpus-${name}-${tag}")
file(MAKE_DIRECTORY ${work} ${CRASHES})
file(GLOB seeds ${CORPUS}/*)
if(seeds)
  file(COPY ${seeds} DESTINATION ${work})
endif()

execute_process(COMMAND ${FUZZER} -max_total_time=${SECONDS} -timeout=25
                        -print_final_stats=1 -artifact_prefix=${CRASHES}/ ${work}
                RESULT_VARIABLE rc)
file(REMOVE_RECURSE ${work})
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${name}: libFuzzer exited with ${rc}; the input is in ${CRASHES}")
endif()
