// Flash layout of dense weights used by the fast kernels: column-major, each input's column
// of n_out codes packed exactly like a row (SPEC §5 traits), so an input-stationary kernel
// reads one word per (input, group of codes_per_word outputs). Same codes, same traits as the
// row-major interchange layout; only the order differs.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "schemes.hpp"

namespace bitnetmcu {

template <class S>
constexpr size_t column_words(size_t n_out) { return S::words_for(n_out); }

template <class S>
constexpr size_t dense_weight_words(size_t n_in, size_t n_out) { return n_in * column_words<S>(n_out); }

// codes: row-major [n_out][n_in]; out: dense_weight_words<S>(n_in, n_out) words.
// scratch: n_out bytes to gather one column.
template <class S>
constexpr void pack_columns(const uint8_t* codes, size_t n_out, size_t n_in, uint8_t* scratch,
                            typename S::word_t* out) {
  const size_t wpc = column_words<S>(n_out);
  for (size_t i = 0; i < n_in; ++i) {
    for (size_t o = 0; o < n_out; ++o) scratch[o] = codes[o * n_in + i];
    pack_row<S>(scratch, n_out, out + i * wpc);
  }
}

// Inverse of pack_columns: back to row-major codes.
template <class S>
constexpr void unpack_columns(const typename S::word_t* words, size_t n_out, size_t n_in, uint8_t* codes) {
  const size_t wpc = column_words<S>(n_out);
  for (size_t i = 0; i < n_in; ++i)
    for (size_t o = 0; o < n_out; ++o) codes[o * n_in + i] = S::code_at(words + i * wpc, o);
}

}  // namespace bitnetmcu
