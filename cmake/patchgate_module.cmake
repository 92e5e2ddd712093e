# patchgate_module(NAME <mod> SOURCES ... DEPS ... [TEST_SOURCES ...] [TEST_DEPS ...])
# Defines library pg_<mod> and, when TEST_SOURCES are given, test executable <mod>_tests
# registered with CTest through gtest_discover_tests.
function(patchgate_module)
  cmake_parse_arguments(M "" "NAME" "SOURCES;DEPS;TEST_SOURCES;TEST_DEPS" ${ARGN})
  add_library(pg_${M_NAME} STATIC ${M_SOURCES})
  target_include_directories(pg_${M_NAME} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(pg_${M_NAME} PUBLIC ${M_DEPS})
  set_target_properties(pg_${M_NAME} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  if(M_TEST_SOURCES AND NOT PATCHGATE_FUZZ)
    add_executable(${M_NAME}_tests ${M_TEST_SOURCES})
    target_link_libraries(${M_NAME}_tests PRIVATE pg_${M_NAME} ${M_TEST_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
    target_compile_definitions(${M_NAME}_tests PRIVATE PATCHGATE_SOURCE_DIR="${PROJECT_SOURCE_DIR}"
      PATCHGATE_BINARY_DIR="${PROJECT_BINARY_DIR}")
    gtest_discover_tests(${M_NAME}_tests DISCOVERY_TIMEOUT 60 PROPERTIES LABELS ${M_NAME})
  endif()
endfunction()

# patchgate_fuzzer(NAME <name> SOURCE <file> DEPS ...) — only with -DPATCHGATE_FUZZ=ON (clang).
function(patchgate_fuzzer)
  cmake_parse_arguments(F "" "NAME;SOURCE" "DEPS" ${ARGN})
  if(PATCHGATE_FUZZ)
    add_executable(${F_NAME} ${F_SOURCE})
    target_link_libraries(${F_NAME} PRIVATE ${F_DEPS})
    target_link_options(${F_NAME} PRIVATE -fsanitize=fuzzer)
    set_target_properties(${F_NAME} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${PROJECT_BINARY_DIR}/fuzzers)
    set_property(GLOBAL APPEND PROPERTY PATCHGATE_FUZZERS ${F_NAME})
  endif()
endfunction()
