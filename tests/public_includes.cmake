# tools/ and examples/ include only public headers (issue #14): every library header they include,
# as <groupgrad/...> or as a quoted path into core/, autograd/, ops/ or nn/, must be one that
# `cmake --install` installed (the public set, cmake/public_headers.cmake), so that they build
# against an installed package as any user's program would.
#   cmake -DSOURCE_DIR=<source root> -DINCLUDE_DIR=<installed prefix>/include -P public_includes.cmake
cmake_minimum_required(VERSION 3.22)
include(${CMAKE_CURRENT_LIST_DIR}/../cmake/public_headers.cmake)
set(library_dirs core autograd ops nn)
file(GLOB_RECURSE sources RELATIVE ${SOURCE_DIR}
     ${SOURCE_DIR}/tools/*.cpp ${SOURCE_DIR}/tools/*.hpp
     ${SOURCE_DIR}/examples/*.cpp ${SOURCE_DIR}/examples/*.hpp)
set(failures "")
foreach(source ${sources})
  file(STRINGS ${SOURCE_DIR}/${source} lines REGEX "^[ \t]*#[ \t]*include[ \t]*[\"<]")
  foreach(line ${lines})
    gg_resolve_include(header ${SOURCE_DIR} ${source} "${line}")
    string(REGEX MATCH "^[^/]+" top "${header}")
    if(line MATCHES "<groupgrad/" OR top IN_LIST library_dirs OR header STREQUAL "groupgrad.hpp")
      if(NOT header OR NOT EXISTS ${INCLUDE_DIR}/groupgrad/${header})
        string(APPEND failures "\n  ${source}: ${line} (not a public header)")
      endif()
    endif()
  endforeach()
endforeach()
if(failures)
  message(FATAL_ERROR "tools/ and examples/ must include only installed (public) headers: "
                      "use <groupgrad/groupgrad.hpp> or make the API they need public:${failures}")
endif()
list(LENGTH sources count)
message(STATUS "${count} files of tools/ and examples/ include only public headers")
