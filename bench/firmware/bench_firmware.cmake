# Runs the firmware benchmarks under QEMU and writes markdown tables (see CMakeLists.txt).
#   cmake -DQEMU=qemu-system-riscv32 -DFIRMWARE_DIR=<cross build> "-DMODELS=a|b" -DFLASH=<bytes> -DRAM=<bytes>
#         -DOUT=results.md -P bench_firmware.cmake
# FLASH, RAM: the CH32V003's sizes (include/bitnetmcu/targets.hpp, read by cmake/bitnetmcu_targets.cmake).
cmake_minimum_required(VERSION 3.18)
set(usage "usage: cmake -DQEMU=<qemu-system-riscv32> -DFIRMWARE_DIR=<cross build> \"-DMODELS=a|b\" -DFLASH=<bytes> -DRAM=<bytes> -DOUT=<results.md> -P bench_firmware.cmake
Runs the kernel and model benchmarks of the firmware build under QEMU (-icount shift=0) and writes markdown
tables to OUT. Normally run as `cmake --build <build> --target bench-firmware`. Help: cmake -P bench_firmware.cmake -- --help")
math(EXPR _last "${CMAKE_ARGC} - 1")
foreach(_i RANGE ${_last})
  if(CMAKE_ARGV${_i} STREQUAL "--help" OR CMAKE_ARGV${_i} STREQUAL "-h")
    execute_process(COMMAND ${CMAKE_COMMAND} -E echo "${usage}")  # to stdout
    return()
  endif()
endforeach()
foreach(_var QEMU FIRMWARE_DIR MODELS FLASH RAM OUT)
  if(NOT DEFINED ${_var})
    message(FATAL_ERROR "bench_firmware.cmake: -D${_var}= missing\n${usage}")
  endif()
endforeach()
string(REPLACE "|" ";" MODELS "${MODELS}")
set(qemu ${QEMU} -M virt -bios none -nographic -cpu rv32 -icount shift=0 -semihosting-config enable=on,target=native -kernel)

function(run elf out)
  execute_process(COMMAND ${qemu} ${FIRMWARE_DIR}/${elf} TIMEOUT 600 RESULT_VARIABLE rc OUTPUT_VARIABLE text ERROR_VARIABLE text)
  if(rc)
    message(FATAL_ERROR "${elf} under QEMU failed (${rc}):\n${text}")
  endif()
  set(${out} "${text}" PARENT_SCOPE)
endfunction()
# "a / b" with two decimals, integers only.
function(ratio a b out)
  math(EXPR r "(${a} * 100 + ${b} / 2) / ${b}")
  math(EXPR whole "${r} / 100")
  math(EXPR frac "${r} % 100")
  if(frac LESS 10)
    set(frac "0${frac}")
  endif()
  set(${out} "${whole}.${frac}" PARENT_SCOPE)
endfunction()

# ---- kernels: instructions per weight ----------------------------------------------------------
run(kernel_bench-Os.elf os_text)
run(kernel_bench-O2.elf o2_text)
set(schemes Binary Ternary 2bitsym 4bitsym 4bit 4bitsym-planes 4bit-planes 8bit FP130 NF4)
string(CONCAT table "## RV32EC dense kernels: instructions per weight (QEMU, minstret)\n\n"
       "Per weight of a nonzero input (zero inputs are skipped); the half-zero column is per stored weight. "
       "-planes: the bit-plane kernel (4bitsym, 4bit on RISC-V; its cost grows with the set bits of the inputs: "
       "these random ones have about 4, half of them negative, MNIST's about 3).\n\n"
       "| scheme | 256→64 -Os | 256→64 -O2 | 64→64 -Os | 64→64 -O2 | 64→64 half zero -Os |\n"
       "|---|---|---|---|---|---|\n")
foreach(s IN LISTS schemes)
  set(row "| ${s} |")
  foreach(case "256x64 nonzero 256@os" "256x64 nonzero 256@o2" "64x64 nonzero 64@os" "64x64 nonzero 64@o2" "64x64 nonzero 32@os")
    string(REPLACE "@" ";" parts "${case}")
    list(GET parts 0 shape)
    list(GET parts 1 opt)
    if(NOT ${opt}_text MATCHES "kernel ${s} ${shape} instret ([0-9]+)")
      message(FATAL_ERROR "no result for ${s} ${shape} (${opt})")
    endif()
    set(n ${CMAKE_MATCH_1})
    string(REGEX MATCH "^([0-9]+)x([0-9]+) nonzero ([0-9]+)" _ "${shape}")
    set(n_in ${CMAKE_MATCH_1})
    set(n_out ${CMAKE_MATCH_2})
    set(nz ${CMAKE_MATCH_3})
    if(nz LESS n_in)
      math(EXPR weights "${n_in} * ${n_out}")  # per stored weight
    else()
      math(EXPR weights "${nz} * ${n_out}")
    endif()
    ratio(${n} ${weights} r)
    string(APPEND row " ${r} |")
  endforeach()
  string(APPEND table "${row}\n")
endforeach()

# ---- models: instructions per inference, flash, RAM --------------------------------------------
string(APPEND table "\n## Firmware models: RV32EC instructions per inference (mean over the QEMU twin's images) and chip memory\n\n"
                    "| model | instr/inference -Os | -O2 | ch32v003 flash | ch32v003 RAM (incl. stack bound) | stack bound |\n"
                    "|---|---|---|---|---|---|\n")
foreach(m IN LISTS MODELS)
  set(row "| ${m} |")
  foreach(elf ${m}-qemu.elf ${m}-qemu-O2.elf)
    run(${elf} text)
    if(NOT text MATCHES "images ([0-9]+) correct [0-9]+ mean_instret ([0-9]+)")
      message(FATAL_ERROR "${elf}: no summary line:\n${text}")
    endif()
    string(APPEND row " ${CMAKE_MATCH_2} |")
  endforeach()
  set(report ${FIRMWARE_DIR}/${m}-ch32v003.size.txt)
  if(EXISTS ${report})
    file(STRINGS ${report} lines)
    string(REGEX MATCH "flash_bytes=([0-9]+)" _ "${lines}")
    set(flash ${CMAKE_MATCH_1})
    string(REGEX MATCH "ram_bytes=([0-9]+)" _ "${lines}")
    set(ram ${CMAKE_MATCH_1})
    string(REGEX MATCH "stack_bound=([0-9]+)" _ "${lines}")
    string(APPEND row " ${flash} / ${FLASH} B | ${ram} / ${RAM} B | ${CMAKE_MATCH_1} B |")
  else()
    string(APPEND row " — | — | — |")
  endif()
  string(APPEND table "${row}\n")
endforeach()

file(WRITE ${OUT} "<!-- Generated by `cmake --build <build> --target bench-firmware`; do not edit. -->\n${table}")
message("${table}")
message(STATUS "written to ${OUT}")
