// A tiny printf for boards without a C library: %d %u %x %s %c %% only, optional width
// (e.g. %8u, %08x). Output goes to board::put_char.
#pragma once
#include <stdarg.h>

namespace console {
void print(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
void vprint(const char* fmt, va_list args);
}  // namespace console
