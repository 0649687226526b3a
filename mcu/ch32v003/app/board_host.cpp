// Board of the host twin: the same application compiled for the build machine, the reference
// the QEMU twin's output is compared with. No counter.
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "board.hpp"

namespace board {

const char counter_name[] = "none";

void init() {}

void put_char(char c) { putchar(c); }

uint32_t counter() { return 0; }

bool read_byte(uint8_t* byte, bool wait_forever) {
  pollfd p{STDIN_FILENO, POLLIN, 0};
  if (!wait_forever && poll(&p, 1, 1000) <= 0) return false;
  if (read(STDIN_FILENO, byte, 1) == 1) return true;
  if (wait_forever) finish(0);  // end of input: done
  return false;
}

void finish(int code) {
  fflush(stdout);
  exit(code);
}

}  // namespace board
