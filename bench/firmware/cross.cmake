# Cross-built half of the firmware benchmark (included by mcu/ch32v003/CMakeLists.txt):
#   kernel_bench-<opt>.elf    RV32EC instructions per weight of each scheme's dense kernel
#   <model>-qemu-O2.elf       the QEMU twins again at -O2, to compare with the -Os default
set(BENCH_FW ${BITNETMCU_ROOT}/bench/firmware)
foreach(opt Os O2)
  add_executable(kernel_bench-${opt} ${BENCH_FW}/kernel_bench.cpp)
  target_include_directories(kernel_bench-${opt} PRIVATE ${BITNETMCU_ROOT}/include)
  target_compile_options(kernel_bench-${opt} PRIVATE -${opt} ${FIRMWARE_COMPILE_OPTIONS} ${PICOLIBC_SPECS})
  target_link_options(kernel_bench-${opt} PRIVATE ${QEMU_LINK_OPTIONS})
  set_target_properties(kernel_bench-${opt} PROPERTIES OUTPUT_NAME kernel_bench-${opt}.elf LINKER_LANGUAGE C)
endforeach()
foreach(header IN LISTS twin_models)
  bitnetmcu_model_name("${header}" name)
  add_executable(${name}-qemu-O2 ${APP}/app.cpp ${APP}/print.cpp ${APP}/board_qemu.cpp)
  bitnetmcu_model_samples("${header}" "${BITNETMCU_QEMU_IMAGES}" o2_images)  # a model's own samples, if any
  bitnetmcu_model_defines(${name}-qemu-O2 "${header}" "${o2_images}")
  target_compile_options(${name}-qemu-O2 PRIVATE -O2)
  set_target_properties(${name}-qemu-O2 PROPERTIES OUTPUT_NAME ${name}-qemu-O2.elf LINKER_LANGUAGE C)
  target_link_options(${name}-qemu-O2 PRIVATE ${QEMU_LINK_OPTIONS})
endforeach()
