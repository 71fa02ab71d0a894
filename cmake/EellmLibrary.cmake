# eellm_layer_library(NAME SOURCES... ) — a static library for one architecture layer, with the
# repository root as include directory and the project's warnings.
function(eellm_layer_library name)
  add_library(${name} STATIC ${ARGN})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR})
  target_link_libraries(${name} PRIVATE eellm_warnings)
endfunction()
