# Cross-built half of the firmware tests (included by mcu/ch32v003/CMakeLists.txt; ctest in
# tests/mcu/CMakeLists.txt runs them):
#   kernel_check-<arch>.elf      kernel_check.cpp for the QEMU twin machine (rv32ec, rv32emc)
#   mulfree-<arch>-<opt>.o       the multiplication-free kernels, for objdump inspection
#   mul_control-rv32emc.o        8bit dense, which must show `mul`
set(TESTS_MCU ${BITNETMCU_ROOT}/tests/mcu)

foreach(arch rv32ec rv32emc)
  add_executable(kernel_check-${arch} ${TESTS_MCU}/kernel_check.cpp)
  target_include_directories(kernel_check-${arch} PRIVATE ${BITNETMCU_ROOT}/include)
  target_compile_options(kernel_check-${arch} PRIVATE -march=${arch} ${FIRMWARE_COMPILE_OPTIONS} ${PICOLIBC_SPECS})
  target_link_options(kernel_check-${arch} PRIVATE -march=${arch} ${QEMU_LINK_OPTIONS})
  set_target_properties(kernel_check-${arch} PROPERTIES OUTPUT_NAME kernel_check-${arch}.elf LINKER_LANGUAGE C)
endforeach()

# Plain compiler calls with fixed output names, so that ctest knows where the objects are.
set(inspected)
function(bitnetmcu_inspect_object src out arch opt)
  add_custom_command(OUTPUT ${out}
    COMMAND ${CMAKE_CXX_COMPILER} -std=c++17 -march=${arch} -mabi=ilp32e -${opt} -ffreestanding -fno-exceptions
            -fno-rtti -I${BITNETMCU_ROOT}/include -MD -MF ${out}.d -c ${src} -o ${out}
    DEPFILE ${out}.d DEPENDS ${src} WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}
    COMMENT "Compiling ${out} for the mul inspection" VERBATIM)
  set(inspected ${inspected} ${out} PARENT_SCOPE)
endfunction()
foreach(arch rv32ec rv32emc)
  foreach(opt Os O2)
    bitnetmcu_inspect_object(${TESTS_MCU}/mulfree_kernels.cpp mulfree-${arch}-${opt}.o ${arch} ${opt})
  endforeach()
endforeach()
bitnetmcu_inspect_object(${TESTS_MCU}/mul_control.cpp mul_control-rv32emc.o rv32emc Os)
add_custom_target(mul_inspection_objects ALL DEPENDS ${inspected})
