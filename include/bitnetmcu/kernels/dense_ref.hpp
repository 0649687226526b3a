// Reference dense layer: the plain twin every optimized kernel is tested against.
// Row-major interchange layout (SPEC §5): row o holds the codes of W[o][0..n_in).
#pragma once
#include <stdint.h>

#include "../schemes.hpp"

namespace bitnetmcu {

// acc[o] = sum_i decode(W[o][i]) * (x[i] - x_offset)   (int32, SPEC §6)
template <class S>
void dense_ref(const typename S::word_t* rows, uint32_t n_in, uint32_t n_out, const int8_t* x,
               int32_t x_offset, int32_t* acc) {
  const uint32_t words_per_row = static_cast<uint32_t>(S::words_for(n_in));
  for (uint32_t o = 0; o < n_out; ++o) {
    const typename S::word_t* row = rows + o * words_per_row;
    int32_t sum = 0;
    for (uint32_t i = 0; i < n_in; ++i)
      sum += S::decode(S::code_at(row, i)) * (static_cast<int32_t>(x[i]) - x_offset);
    acc[o] = sum;
  }
}

}  // namespace bitnetmcu
