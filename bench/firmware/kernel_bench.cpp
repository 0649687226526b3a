// RV32EC instructions per weight of each scheme's dense kernel, counted with minstret under
// qemu-system-riscv32 -icount shift=0 (SPEC §8). Layer shapes of the FC 64/64/64 models: the
// 256 -> 64 first layer and a 64 -> 64 hidden layer; inputs all nonzero (the kernels skip zero
// inputs, so this is the cost per weight actually visited) and half zero (a hidden layer after
// ReLU). Prints one line per case; bench_firmware.cmake turns them into a table.
#include <bitnetmcu/bitnetmcu.hpp>

#include <stdio.h>
#include <stdlib.h>

namespace bn = bitnetmcu;

namespace {

uint32_t g_rng = 0x9E3779B9u;
uint32_t next() {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 17;
  g_rng ^= g_rng << 5;
  return g_rng;
}

uint32_t instret() {
  uint32_t v;
  asm volatile(".option push\n.option arch, +zicsr\ncsrr %0, minstret\n.option pop" : "=r"(v));
  return v;
}

uint8_t g_codes[256 * 64], g_column[64];
uint32_t g_words[256 * 64 / 4];
int8_t g_x[256];
int32_t g_acc[64];

// Random codes packed into g_words (pack_columns) and random inputs in g_x; returns the nonzero inputs.
template <class S>
uint32_t random_layer(uint32_t n_in, uint32_t n_out, bool half_zero) {
  const uint32_t num_codes = S::id == bn::SchemeId::Ternary ? 3u : (1u << S::code_bits);
  for (uint32_t i = 0; i < n_in * n_out; ++i) g_codes[i] = static_cast<uint8_t>(next() % num_codes);
  bn::pack_columns<S>(g_codes, n_out, n_in, g_column, reinterpret_cast<typename S::word_t*>(g_words));
  uint32_t nonzero = 0;
  for (uint32_t i = 0; i < n_in; ++i) {
    int8_t v = static_cast<int8_t>(next() >> 24);
    if (v == 0 || (half_zero && (i & 1))) v = half_zero && (i & 1) ? 0 : 1;
    g_x[i] = v;
    nonzero += v != 0;
  }
  return nonzero;
}

template <class S>
void bench(uint32_t n_in, uint32_t n_out, bool half_zero) {
  const uint32_t nonzero = random_layer<S>(n_in, n_out, half_zero);
  auto* w = reinterpret_cast<typename S::word_t*>(g_words);
  const uint32_t start = instret();
  bn::dense<S>(w, n_in, n_out, g_x, 0, g_acc);
  const uint32_t used = instret() - start;
  printf("kernel %s %ux%u nonzero %u instret %u\n", S::name, static_cast<unsigned>(n_in), static_cast<unsigned>(n_out),
         static_cast<unsigned>(nonzero), static_cast<unsigned>(used));
}

template <class S>
void bench_scheme() {
  bench<S>(256, 64, false);
  bench<S>(64, 64, false);
  bench<S>(64, 64, true);
}

// The bit-plane kernel on the same layers ("<scheme>-planes"). Its cost grows with the set bits
// of |a|: these random inputs have about 4 (MNIST's about 3), half of them negative (a second pass).
uint32_t g_planes[bn::plane_column_words(256, 64)], g_lanes[bn::plane_scratch_words(64)];

template <class S>
void bench_planes(uint32_t n_in, uint32_t n_out, bool half_zero) {
  const uint32_t nonzero = random_layer<S>(n_in, n_out, half_zero);
  bn::plane_columns<S>(g_words, n_out, n_in, g_planes);
  const bn::PlaneLayer layer{g_planes, n_in, n_out, g_lanes};
  const uint32_t start = instret();
  bn::dense_planes<S::plane_scale, S::plane_bias, false>(layer, g_x, 0, g_acc);
  const uint32_t used = instret() - start;
  printf("kernel %s-planes %ux%u nonzero %u instret %u\n", S::name, static_cast<unsigned>(n_in),
         static_cast<unsigned>(n_out), static_cast<unsigned>(nonzero), static_cast<unsigned>(used));
}

template <class S>
void bench_planes_scheme() {
  bench_planes<S>(256, 64, false);
  bench_planes<S>(64, 64, false);
  bench_planes<S>(64, 64, true);
}

}  // namespace

int main() {
  bench_scheme<bn::Binary>();
  bench_scheme<bn::Ternary>();
  bench_scheme<bn::Sym2>();
  bench_scheme<bn::Sym4>();
  bench_scheme<bn::Int4>();
  bench_planes_scheme<bn::Sym4>();
  bench_planes_scheme<bn::Int4>();
  bench_scheme<bn::Int8>();
  bench_scheme<bn::FP130>();
  bench_scheme<bn::NF4>();
  fflush(stdout);
  exit(0);
}
