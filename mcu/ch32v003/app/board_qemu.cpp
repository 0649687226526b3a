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

// The virt machine's NS16550A UART (serial mode: -serial stdio): RBR/THR at +0, LSR at +5.
volatile uint8_t* const kUart = reinterpret_cast<volatile uint8_t*>(0x10000000);
constexpr uint8_t kLsrDataReady = 0x01, kLsrTxEmpty = 0x20;

#ifdef BITNETMCU_CONSOLE_UART  // serial mode: the protocol's answers go out on the UART
void put_char(char c) {
  while (!(kUart[5] & kLsrTxEmpty)) {
  }
  kUart[0] = static_cast<uint8_t>(c);
}
#else
void put_char(char c) { putchar(c); }
#endif

bool read_byte(uint8_t* byte, bool wait_forever) {
  // -icount shift=0 ties virtual time to instructions, so the timeout is a poll count: ~20M
  // instructions, far more than the host needs to hand QEMU the next byte of a frame.
  for (uint32_t polls = 0; wait_forever || polls < 2000000u; ++polls) {
    if (kUart[5] & kLsrDataReady) {
      *byte = kUart[0];
      return true;
    }
  }
  return false;
}

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
