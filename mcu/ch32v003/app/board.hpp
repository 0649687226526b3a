// What the application needs from the board it runs on. Three boards implement it from the same
// application code: the CH32V003/V002 chip (board_ch32v003.cpp), its QEMU twin
// (board_qemu.cpp) and the host twin used as the parity reference (board_host.cpp).
#pragma once
#include <stdint.h>

namespace board {

void init();                  // clocks, counter, console
void put_char(char c);        // console output
uint32_t counter();           // free-running: cycles (chip) or retired instructions (QEMU)
extern const char counter_name[];  // "cycles", "instret" or "none"
[[noreturn]] void finish(int code);  // end of the run: exit code (QEMU/host) or idle (chip)
// Serial mode (serial_app.cpp): one received byte. Returns false when none arrived within the
// board's byte timeout (chip: 100 ms; QEMU: a bounded poll count; host: 1 s), unless
// wait_forever.
bool read_byte(uint8_t* byte, bool wait_forever);

}  // namespace board
