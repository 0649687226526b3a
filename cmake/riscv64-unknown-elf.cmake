# CMake toolchain file: Debian's bare-metal RISC-V GCC (gcc-riscv64-unknown-elf) building for the
# CH32V003 (RV32EC, ILP32E) and its QEMU twin. The package's multilibs include rv32e/ilp32e and
# rv32em/ilp32e, so libgcc/picolibc match the chip; -march/-mabi are set per target by the
# firmware project (CH32V002 = rv32emc) through BITNETMCU_RISCV_ARCH.
set(CMAKE_SYSTEM_NAME Generic)
set(CMAKE_SYSTEM_PROCESSOR riscv32)

set(BITNETMCU_RISCV_PREFIX riscv64-unknown-elf- CACHE STRING "Prefix of the bare-metal RISC-V tools")
find_program(CMAKE_C_COMPILER ${BITNETMCU_RISCV_PREFIX}gcc REQUIRED)
find_program(CMAKE_CXX_COMPILER ${BITNETMCU_RISCV_PREFIX}g++ REQUIRED)
set(CMAKE_ASM_COMPILER ${CMAKE_C_COMPILER})
find_program(CMAKE_OBJCOPY ${BITNETMCU_RISCV_PREFIX}objcopy REQUIRED)
find_program(CMAKE_OBJDUMP ${BITNETMCU_RISCV_PREFIX}objdump REQUIRED)
find_program(CMAKE_SIZE ${BITNETMCU_RISCV_PREFIX}size REQUIRED)

# A bare-metal compiler cannot link a test program without our startup: check compiling only.
set(CMAKE_TRY_COMPILE_TARGET_TYPE STATIC_LIBRARY)

set(CMAKE_C_FLAGS_INIT "-march=rv32ec -mabi=ilp32e")
set(CMAKE_CXX_FLAGS_INIT "-march=rv32ec -mabi=ilp32e")
set(CMAKE_ASM_FLAGS_INIT "-march=rv32ec -mabi=ilp32e")
set(CMAKE_C_FLAGS_MINSIZEREL_INIT "-Os")
set(CMAKE_CXX_FLAGS_MINSIZEREL_INIT "-Os")
set(CMAKE_C_FLAGS_RELEASE_INIT "-O2")
set(CMAKE_CXX_FLAGS_RELEASE_INIT "-O2")
set(CMAKE_EXE_LINKER_FLAGS_INIT "-Wl,--gc-sections")

set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
