# Target proof, object code (issue 2, SPEC §6): disassembles the multiplication-free kernels
# (mulfree_kernels.cpp) with their relocations and fails on
#   * any call to a libgcc multiply (__mulsi3, __muldi3) in every object: on RV32EC that is
#     how a multiplication of two run-time values shows up;
#   * any mul/mulh* instruction in the STRICT objects (rv32emc -O2: with a multiplier at
#     hand, GCC still finds nothing to multiply).
# INFO objects (rv32emc -Os) are listed, not judged: at -Os GCC may fold a constant shift-add
# chain such as x + (x << 1) back into `mul x, 3` because it is no bigger.
# The CONTROL object (8bit dense, rv32emc) must show `mul`, or the inspection is blind.
#   cmake -DOBJDUMP=... -DSTRICT="a.o;b.o" -DINFO="c.o" -DCONTROL=d.o -P check_mulfree.cmake
cmake_minimum_required(VERSION 3.18)
string(REPLACE "|" ";" STRICT "${STRICT}")  # ctest passes lists with | separators
string(REPLACE "|" ";" INFO "${INFO}")
set(expected mulfree_dense_binary mulfree_dense_ternary mulfree_dense_2bitsym mulfree_dense_4bitsym
    mulfree_dense_fp130 mulfree_dense_nf4 mulfree_shiftnorm_relu mulfree_argmax mulfree_cnn_fp130)
set(mul_insn "\t(mul|mulh|mulhu|mulhsu)\t")
set(mul_call "R_RISCV_CALL(_PLT)?\t__mul[sd]i3")

function(inspect obj strict)
  execute_process(COMMAND ${OBJDUMP} -dr --no-show-raw-insn ${obj} OUTPUT_VARIABLE asm RESULT_VARIABLE rc)
  if(rc)
    message(FATAL_ERROR "${OBJDUMP} -dr ${obj} failed")
  endif()
  foreach(sym IN LISTS expected)
    if(NOT asm MATCHES "<${sym}>:")
      message(FATAL_ERROR "${obj}: ${sym} missing -- nothing would be inspected")
    endif()
  endforeach()
  string(REPLACE "\n" ";" lines "${asm}")
  set(fn "")
  set(count 0)
  set(bad "")
  set(noted "")
  foreach(line IN LISTS lines)
    if(line MATCHES "^[0-9a-f]+ <([^.>][^>]*)>:")
      set(fn ${CMAKE_MATCH_1})
    elseif(line MATCHES "${mul_call}")
      list(APPEND bad "${fn}: call ${CMAKE_MATCH_0}")
    elseif(line MATCHES "${mul_insn}")
      if(strict)
        list(APPEND bad "${fn}: ${line}")
      else()
        list(APPEND noted "${fn}")
      endif()
    elseif(line MATCHES "^ +[0-9a-f]+:\t")
      math(EXPR count "${count} + 1")
    endif()
  endforeach()
  get_filename_component(name ${obj} NAME)
  if(bad)
    string(REPLACE ";" "\n  " bad "${bad}")
    message(FATAL_ERROR "${name}: multiplication in multiplication-free kernels:\n  ${bad}")
  endif()
  if(noted)
    list(REMOVE_DUPLICATES noted)
    string(REPLACE ";" ", " noted "${noted}")
    message(STATUS "${name}: ${count} instructions, no __mulsi3; GCC-folded constant muls (informational) in: ${noted}")
  else()
    message(STATUS "${name}: ${count} instructions inspected, no mul, no __mulsi3")
  endif()
endfunction()

foreach(obj IN LISTS STRICT)
  inspect(${obj} TRUE)
endforeach()
foreach(obj IN LISTS INFO)
  inspect(${obj} FALSE)
endforeach()
execute_process(COMMAND ${OBJDUMP} -d --no-show-raw-insn ${CONTROL} OUTPUT_VARIABLE asm)
if(NOT asm MATCHES "${mul_insn}")
  message(FATAL_ERROR "control ${CONTROL} (8bit dense, rv32emc) shows no mul: the inspection is blind")
endif()
message(STATUS "control: 8bit dense on rv32emc uses mul, as it should")
