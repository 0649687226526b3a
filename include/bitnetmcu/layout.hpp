// Flash layout of dense weights used by the fast kernels. Same codes and traits as the
// row-major interchange layout (SPEC §5); only the order differs:
//
//   full part: column-major; input i's first full*cpw output codes packed like a row into
//              `full` words, so an input-stationary kernel reads one word per (input, group of
//              codes_per_word outputs);
//   tail part: the remaining r = n_out % cpw codes of every column, one column after another,
//              packed as one stream of n_in * r codes.
//
// No word holds padding but the very last one, so the layout is as compact as the row-major
// one (a 64 -> 10 4-bit layer takes 320 bytes, not the 512 of one padded word pair per input).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "schemes.hpp"

namespace bitnetmcu {

struct ColumnShape {
  size_t full;  // whole words per column
  size_t tail;  // codes per column in the tail stream
};
template <class S>
constexpr ColumnShape column_shape(size_t n_out) {
  return {n_out / S::codes_per_word, n_out % S::codes_per_word};
}

template <class S>
constexpr size_t dense_weight_words(size_t n_in, size_t n_out) {
  const ColumnShape c = column_shape<S>(n_out);
  return n_in * c.full + S::words_for(n_in * c.tail);
}

// codes: row-major [n_out][n_in]; out: dense_weight_words<S>(n_in, n_out) words.
// scratch: n_out bytes to gather one column.
template <class S>
constexpr void pack_columns(const uint8_t* codes, size_t n_out, size_t n_in, uint8_t* scratch,
                            typename S::word_t* out) {
  const ColumnShape c = column_shape<S>(n_out);
  typename S::word_t* tail_out = out + n_in * c.full;
  uint8_t pending[S::codes_per_word] = {};  // tail codes not yet packed into a word
  size_t n_pending = 0;
  for (size_t i = 0; i < n_in; ++i) {
    for (size_t o = 0; o < n_out; ++o) scratch[o] = codes[o * n_in + i];
    if (c.full) pack_row<S>(scratch, c.full * S::codes_per_word, out + i * c.full);
    for (size_t j = 0; j < c.tail; ++j) {
      pending[n_pending++] = scratch[c.full * S::codes_per_word + j];
      if (n_pending == S::codes_per_word) tail_out += pack_row<S>(pending, n_pending, tail_out), n_pending = 0;
    }
  }
  if (n_pending) pack_row<S>(pending, n_pending, tail_out);
}

// Inverse of pack_columns: back to row-major codes.
template <class S>
constexpr void unpack_columns(const typename S::word_t* words, size_t n_out, size_t n_in, uint8_t* codes) {
  const ColumnShape c = column_shape<S>(n_out);
  const typename S::word_t* tails = words + n_in * c.full;
  for (size_t i = 0; i < n_in; ++i) {
    for (size_t o = 0; o < c.full * S::codes_per_word; ++o) codes[o * n_in + i] = S::code_at(words + i * c.full, o);
    for (size_t j = 0; j < c.tail; ++j)
      codes[(c.full * S::codes_per_word + j) * n_in + i] = S::code_at(tails, i * c.tail + j);
  }
}

// The bit-plane kernels' layout (kernels/dense_planes.hpp) of a scheme with plane traits:
// column i = plane_words(n_out) words of offset-binary codes u = (decode + plane_bias) /
// plane_scale; output 8p + n in word p at nibble plane_nibble(n) (n's 3 bits reversed: the
// kernel's byte-lane sums then come out as output pairs 2q, 2q + 1 in order), padding u = 0.
// From pack_columns words; out: n_in * plane_words(n_out) words.
constexpr size_t plane_words(size_t n_out) { return (n_out + 7) / 8; }
// The words of a layer in that layout: + 3 where the RV32 kernel's passes of four words may read
// past the last column (words per column neither <= 2 nor a multiple of 4).
constexpr size_t plane_column_words(size_t n_in, size_t n_out) {
  const size_t w = plane_words(n_out);
  return n_in * w + ((w <= 2 || w % 4 == 0) ? 0 : 3);
}
constexpr uint32_t plane_nibble(uint32_t n) { return ((n & 1) << 2) | (n & 2) | ((n >> 2) & 1); }
template <class S>
constexpr void plane_columns(const typename S::word_t* words, size_t n_out, size_t n_in, uint32_t* out) {
  const ColumnShape c = column_shape<S>(n_out);
  const typename S::word_t* tails = words + n_in * c.full;
  const size_t per_column = plane_words(n_out);
  for (size_t i = 0; i < n_in; ++i) {
    for (size_t p = 0; p < per_column; ++p) out[i * per_column + p] = 0;
    for (size_t o = 0; o < n_out; ++o) {
      const uint8_t code = o < c.full * S::codes_per_word ? S::code_at(words + i * c.full, o)
                                                          : S::code_at(tails, i * c.tail + (o - c.full * S::codes_per_word));
      const uint32_t u = static_cast<uint32_t>((S::decode(code) + S::plane_bias) / S::plane_scale);
      out[i * per_column + o / 8] |= u << (4 * plane_nibble(static_cast<uint32_t>(o % 8)));
    }
  }
}

}  // namespace bitnetmcu
