# The public headers: the umbrella header (and the other public roots) and every library header
# they include, transitively. Only these are installed: the other headers are the library's own
# and may use its private dependencies (oneDNN, nlohmann-json, OpenMP), which a public header must
# never reach. Computed when installing, so that it always follows the includes as they are.

# Include prefixes of the library's private dependencies (MPI too: gg::distributed keeps it in
# its .cpp): a public header including one is an error.
set(GG_PRIVATE_INCLUDES "oneapi/" "dnnl" "nlohmann/" "omp.h" "spdlog/" "mpi.h")

# It runs in the install script, which sets no policies: IN_LIST and cmake_path need these.
cmake_policy(PUSH)
cmake_policy(VERSION 3.22)

# gg_resolve_include(<out-var> <source-dir> <file> <line>): the library file that the #include
# `line` of `file` names, relative to <source-dir>, as the compiler resolves it here: a quoted path
# beside the including file, then from the source root; <groupgrad/x> as the source root's x.
# Empty for any other <...> include and for a quoted path found in neither place.
function(gg_resolve_include out source_dir file line)
  get_filename_component(dir ${file} DIRECTORY)
  set(candidates "")
  if(line MATCHES "\"([^\"]+)\"")
    set(candidates ${CMAKE_MATCH_1})
    if(dir)
      list(PREPEND candidates ${dir}/${CMAKE_MATCH_1})
    endif()
  elseif(line MATCHES "<groupgrad/([^>]+)>")
    set(candidates ${CMAKE_MATCH_1})
  endif()
  set(found "")
  foreach(candidate ${candidates})
    cmake_path(NORMAL_PATH candidate)
    if(NOT found AND EXISTS ${source_dir}/${candidate})
      set(found ${candidate})
    endif()
  endforeach()
  set(${out} "${found}" PARENT_SCOPE)
endfunction()

# gg_public_headers(<out-var> <source-dir> <root>...) sets <out-var> to the roots and every header
# they reach through #include "..." or #include <groupgrad/...>, relative to <source-dir>.
function(gg_public_headers out source_dir)
  set(pending ${ARGN})
  set(seen "")
  while(pending)
    list(POP_FRONT pending header)
    if(header IN_LIST seen)
      continue()
    endif()
    list(APPEND seen ${header})
    file(STRINGS ${source_dir}/${header} lines REGEX "^[ \t]*#[ \t]*include")
    foreach(line ${lines})
      if(line MATCHES "<([^>]+)>" AND NOT line MATCHES "<groupgrad/")
        set(system ${CMAKE_MATCH_1})
        foreach(private ${GG_PRIVATE_INCLUDES})
          string(FIND "${system}" "${private}" at)
          if(at EQUAL 0)
            message(FATAL_ERROR "${header} is public (reached from ${ARGN}) but includes "
                                "<${system}>, a private dependency: move that include into a .cpp "
                                "or an internal header")
          endif()
        endforeach()
        continue()
      endif()
      gg_resolve_include(found ${source_dir} ${header} "${line}")
      if(NOT found)
        message(FATAL_ERROR "${header}: '${line}' resolves to no file")
      endif()
      list(APPEND pending ${found})
    endforeach()
  endwhile()
  set(${out} ${seen} PARENT_SCOPE)
endfunction()
cmake_policy(POP)
