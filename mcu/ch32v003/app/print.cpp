#include "print.hpp"

#include <stdint.h>

#include "board.hpp"

namespace console {
namespace {

// Digits by repeated subtraction of powers of ten: RV32EC has no divide instruction, and this
// keeps __udivsi3 out of the firmware.
void put_unsigned(uint32_t v, unsigned base, unsigned width, char pad) {
  char digits[10];
  unsigned n = 0;
  if (base == 16) {
    do {
      const unsigned d = v & 15u;
      digits[n++] = static_cast<char>(d < 10 ? '0' + d : 'a' + d - 10);
      v >>= 4;
    } while (v);
  } else {
    static const uint32_t kPowers[] = {1000000000u, 100000000u, 10000000u, 1000000u, 100000u,
                                       10000u,      1000u,      100u,      10u,      1u};
    bool started = false;
    char rev[10];
    unsigned m = 0;
    for (uint32_t p : kPowers) {
      char d = '0';
      while (v >= p) v -= p, ++d;
      if (d != '0' || started || p == 1) started = true, rev[m++] = d;
    }
    for (unsigned i = 0; i < m; ++i) digits[i] = rev[m - 1 - i];
    n = m;
  }
  for (unsigned i = n; i < width; ++i) board::put_char(pad);
  while (n) board::put_char(digits[--n]);
}

}  // namespace

void vprint(const char* fmt, va_list args) {
  for (; *fmt; ++fmt) {
    if (*fmt != '%') {
      board::put_char(*fmt);
      continue;
    }
    char pad = ' ';
    unsigned width = 0;
    if (*++fmt == '0') pad = '0', ++fmt;
    while (*fmt >= '0' && *fmt <= '9') width = width * 10 + static_cast<unsigned>(*fmt++ - '0');
    switch (*fmt) {
      case 'd': {
        const int v = va_arg(args, int);
        if (v < 0) board::put_char('-');
        put_unsigned(v < 0 ? 0u - static_cast<unsigned>(v) : static_cast<unsigned>(v), 10, width, pad);
        break;
      }
      case 'u': put_unsigned(va_arg(args, unsigned), 10, width, pad); break;
      case 'x': put_unsigned(va_arg(args, unsigned), 16, width, pad); break;
      case 'c': board::put_char(static_cast<char>(va_arg(args, int))); break;
      case 's':
        for (const char* s = va_arg(args, const char*); *s; ++s) board::put_char(*s);
        break;
      case '%': board::put_char('%'); break;
      default: return;  // unknown conversion (or end of string): stop
    }
  }
}

void print(const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  vprint(fmt, args);
  va_end(args);
}

}  // namespace console
