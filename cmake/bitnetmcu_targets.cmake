# The chip table of include/bitnetmcu/targets.hpp, for CMake: the header is the one definition,
# this only reads its rows. Sets BITNETMCU_TARGET_NAMES and, per chip <c>: <c>_ARCH (-march),
# <c>_FLASH and <c>_RAM (bytes), <c>_HAS_MULTIPLIER (ON/OFF).
# Used by the firmware cross build (mcu/ch32v003) and the host build (bench/firmware, tests).
set(_bitnetmcu_targets_hpp "${CMAKE_CURRENT_LIST_DIR}/../include/bitnetmcu/targets.hpp")
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${_bitnetmcu_targets_hpp}")
file(STRINGS "${_bitnetmcu_targets_hpp}" _bitnetmcu_target_rows REGEX "^constexpr Target k[A-Za-z0-9_]+\\{")
set(BITNETMCU_TARGET_NAMES)
foreach(_row IN LISTS _bitnetmcu_target_rows)
  if(NOT _row MATCHES "\\{\"([a-z0-9_]+)\", \"([a-z0-9_]+)\", ([0-9]+), ([0-9]+), (true|false)\\};")
    message(FATAL_ERROR "${_bitnetmcu_targets_hpp}: cannot read the chip row '${_row}' "
                        "(expected {\"name\", \"march\", flash_bytes, ram_bytes, true|false};)")
  endif()
  set(_chip ${CMAKE_MATCH_1})
  list(APPEND BITNETMCU_TARGET_NAMES ${_chip})
  set(${_chip}_ARCH ${CMAKE_MATCH_2})
  set(${_chip}_FLASH ${CMAKE_MATCH_3})
  set(${_chip}_RAM ${CMAKE_MATCH_4})
  if(CMAKE_MATCH_5 STREQUAL "true")
    set(${_chip}_HAS_MULTIPLIER ON)
  else()
    set(${_chip}_HAS_MULTIPLIER OFF)
  endif()
endforeach()
if(NOT BITNETMCU_TARGET_NAMES)
  message(FATAL_ERROR "${_bitnetmcu_targets_hpp}: no chip rows found")
endif()
