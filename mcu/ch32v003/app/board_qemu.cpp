// Board of the emulated twin: qemu-system-riscv32 -M virt with picolibc's semihosting
// (SPEC §8). Console = semihosted stdout; counter = minstret, which counts retired
// instructions exactly under -icount shift=0; finish = exit(code), which QEMU turns into its
// own exit status (returning from main would hang the emulator).
#include <stdio.h>
#include <stdlib.h>

#include "board.hpp"

namespace board {

const char counter_name[] = "instret";

void init() {}

void put_char(char c) { putchar(c); }

uint32_t counter() {
  uint32_t v;
  // csrr v, minstret -- with zicsr enabled here only, so the build links the plain rv32e
  // multilib (an -march with _zicsr selects no multilib; SPEC §8).
  asm volatile(".option push\n.option arch, +zicsr\ncsrr %0, minstret\n.option pop" : "=r"(v));
  return v;
}

void finish(int code) {
  fflush(stdout);
  exit(code);
}

}  // namespace board
