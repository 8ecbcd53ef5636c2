# ioasis_test(NAME SOURCES... LIBS libs... [LABELS labels...])
# One gtest binary; each test case becomes a ctest test so failures are named.
function(ioasis_test name)
  cmake_parse_arguments(T "" "" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} ioasis_flags GTest::gmock GTest::gtest_main)
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES LABELS "unit;${T_LABELS}")
endfunction()
