// Kernel check program of the target proof (issue 2): every scheme's dense kernel (odd sizes,
// with and without an input offset), its reference twin, the row-sum dense layer, ShiftNorm
// (edge cases included), argmax, the shift-add multiply, conv3x3, max-pool and the CNN channel
// block, the bit-plane dense kernel, on pseudo-random data. It prints one hash per case; ctest runs it on the host and under
// qemu-system-riscv32 (RV32EC and RV32EmC) and requires identical output, line by line. It also
// checks dense == dense_ref on whatever machine it runs and prints MISMATCH otherwise.
#include <bitnetmcu/bitnetmcu.hpp>

#include <stdio.h>
#include <stdlib.h>

namespace bn = bitnetmcu;

namespace {

uint32_t g_rng = 0x12345678u;
uint32_t next() {  // xorshift32: no multiply, same sequence everywhere
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 17;
  g_rng ^= g_rng << 5;
  return g_rng;
}
int8_t random_int8(uint32_t zero_percent_of_256) {
  const uint32_t r = next();
  if ((r & 255u) < zero_percent_of_256) return 0;
  return static_cast<int8_t>(r >> 24);
}

uint32_t hash(const int32_t* v, uint32_t n, uint32_t h = 0x811C9DC5u) {
  for (uint32_t i = 0; i < n; ++i) {
    h ^= static_cast<uint32_t>(v[i]);
    h = (h << 7 | h >> 25) + (h >> 3) + 0x9E3779B9u;
  }
  return h;
}
uint32_t hash8(const int8_t* v, uint32_t n) {
  uint32_t h = 0x811C9DC5u;
  for (uint32_t i = 0; i < n; ++i) h = ((h << 7 | h >> 25) ^ static_cast<uint8_t>(v[i])) + 0x9E3779B9u;
  return h;
}

constexpr uint32_t kMaxIn = 256, kMaxOut = 64;
uint8_t g_codes[kMaxIn * kMaxOut];
uint32_t g_cols[kMaxIn * kMaxOut / 2 + 64];  // big enough for every scheme (8bit: n_in * n_out / 4 words)
uint32_t g_rows[kMaxIn * kMaxOut / 2 + 64];
uint8_t g_column[kMaxOut];
int8_t g_x[kMaxIn];
int32_t g_acc[kMaxOut], g_ref[kMaxOut], g_rowsum[kMaxOut];
uint32_t g_failures = 0;

template <class S>
void check_dense(uint32_t n_in, uint32_t n_out, uint32_t zero_share, bool offset) {
  using W = typename S::word_t;
  const uint32_t num_codes = S::id == bn::SchemeId::Ternary ? 3u : (1u << S::code_bits);
  for (uint32_t i = 0; i < n_in * n_out; ++i) g_codes[i] = static_cast<uint8_t>(next() % num_codes);
  for (uint32_t i = 0; i < n_in; ++i) g_x[i] = random_int8(zero_share);
  W* cols = reinterpret_cast<W*>(g_cols);
  W* rows = reinterpret_cast<W*>(g_rows);
  bn::pack_columns<S>(g_codes, n_out, n_in, g_column, cols);
  const uint32_t rw = static_cast<uint32_t>(bn::row_words<S>(n_in));
  for (uint32_t o = 0; o < n_out; ++o) bn::pack_row<S>(g_codes + o * n_in, n_in, rows + o * rw);
  const int32_t x_offset = offset ? g_x[0] : 0;

  bn::dense<S>(cols, n_in, n_out, g_x, x_offset, g_acc);
  bn::dense_ref<S>(rows, n_in, n_out, g_x, x_offset, g_ref);
  bool same = true;
  for (uint32_t o = 0; o < n_out; ++o) same = same && g_acc[o] == g_ref[o];
  // The exporter's path: rowsum + background offset inside dense_layer, equal to the plain sum.
  for (uint32_t o = 0; o < n_out; ++o) {
    int32_t s = 0;
    for (uint32_t i = 0; i < n_in; ++i) s += S::decode(g_codes[o * n_in + i]);
    g_rowsum[o] = s;
  }
  int32_t layer[kMaxOut];
  bn::dense_layer<S>(cols, g_rowsum, n_in, n_out, g_x, layer);
  bn::dense_ref<S>(rows, n_in, n_out, g_x, 0, g_ref);
  for (uint32_t o = 0; o < n_out; ++o) same = same && layer[o] == g_ref[o];
  const uint32_t acc_hash = hash(g_acc, n_out);
  uint32_t planes_hash = 0;
  if constexpr (bn::has_plane_traits<S>) {  // the bit-plane kernel (RV32: its assembly) on the same layer
    static uint32_t planes[bn::plane_column_words(kMaxIn, kMaxOut)], t[bn::plane_scratch_words(kMaxOut)];
    bn::plane_columns<S>(cols, n_out, n_in, planes);
    const bn::PlaneLayer pl{planes, n_in, n_out, t};
    bn::dense_planes<S::plane_scale, S::plane_bias, false>(pl, g_x, x_offset, g_acc);
    bn::dense_ref<S>(rows, n_in, n_out, g_x, x_offset, g_ref);
    for (uint32_t o = 0; o < n_out; ++o) same = same && g_acc[o] == g_ref[o];
    for (uint32_t w : t) same = same && w == 0;
    planes_hash = hash(g_acc, n_out);
  }
  if (!same) ++g_failures;
  printf("dense %-7s %3ux%-3u zeros %3u offset %d acc %08x layer %08x planes %08x%s\n", S::name,
         static_cast<unsigned>(n_in), static_cast<unsigned>(n_out), static_cast<unsigned>(zero_share), offset ? 1 : 0,
         static_cast<unsigned>(acc_hash), static_cast<unsigned>(hash(layer, n_out)),
         static_cast<unsigned>(planes_hash), same ? "" : " MISMATCH");
}

template <class S>
void check_scheme() {
  static const uint32_t sizes[][2] = {{1, 1},   {3, 7},   {10, 10}, {17, 33}, {33, 17},
                                      {64, 10}, {40, 24}, {50, 40}, {100, 64}, {256, 64}};
  for (const auto& s : sizes) {
    check_dense<S>(s[0], s[1], 128, false);
    check_dense<S>(s[0], s[1], 0, true);
  }
}

void check_shiftnorm() {
  int32_t acc[kMaxOut];
  int8_t out[kMaxOut];
  const int32_t cases = 7;
  for (int32_t c = 0; c < cases; ++c) {
    const uint32_t n = 1 + next() % kMaxOut;
    for (uint32_t i = 0; i < n; ++i) {
      const int32_t r = static_cast<int32_t>(next());
      switch (c) {
        case 0: acc[i] = -1 - (r & 0xFFFF); break;                     // all negative
        case 1: acc[i] = (r & 127) - 64; break;                         // max <= 127: no shift
        case 2: acc[i] = (r & 255) - 128; break;                        // around 128
        case 3: acc[i] = r; break;                                      // full int32 range
        case 4: acc[i] = 0x7FFFFFFF - (r & 0xFF); break;                // near the int32 bound
        default: acc[i] = r >> (c * 3); break;
      }
    }
    if (c == 1) acc[0] = 127;
    if (c == 2) acc[0] = 128;
    const uint32_t shift = bn::shiftnorm_shift(acc, n);
    bn::shiftnorm_relu(acc, n, out);
    printf("shiftnorm case %d n %2u shift %2u out %08x argmax %u\n", static_cast<int>(c), static_cast<unsigned>(n),
           static_cast<unsigned>(shift), static_cast<unsigned>(hash8(out, n)),
           static_cast<unsigned>(bn::argmax(acc, n)));
  }
}

void check_arith() {
  uint32_t h = 0;
  for (int i = 0; i < 200; ++i) {
    const int32_t a = static_cast<int32_t>(next()) >> (next() & 15), b = static_cast<int32_t>(next()) >> 16;
    const int32_t p = bn::mul_shift_add(a, b);
    h = hash(&p, 1, h);
  }
  printf("mul_shift_add %08x\n", static_cast<unsigned>(h));
}

// Conv weights are one code byte each: int8 values for 8bit, [sign | exponent] for FP130.
template <class S>
void check_cnn() {
  static int8_t image[16 * 16];
  static uint8_t weights[3 * 9 * 8];
  static int32_t plane[14 * 14], out[8 * 4];
  for (auto& p : image) p = random_int8(100);
  for (auto& w : weights) w = S::id == bn::SchemeId::FP130 ? static_cast<uint8_t>(next() & 15u)
                                                           : static_cast<uint8_t>(random_int8(30));
  int32_t conv[14 * 14];
  bn::conv3x3_relu_shift<S>(image, 16, 16, weights, 4, conv);
  printf("conv3x3 %-7s %08x\n", S::name, static_cast<unsigned>(hash(conv, 14 * 14)));
  int32_t pooled[7 * 7];
  bn::maxpool2x2(conv, 14, 14, pooled);
  printf("maxpool %-7s %08x\n", S::name, static_cast<unsigned>(hash(pooled, 7 * 7)));
  for (uint32_t shift = 4; shift <= 7; ++shift) {
    bn::cnn_layer<S>(weights, 16, 8, shift, image, plane, out);
    // the block against its reference twin, on this machine
    static int32_t ref[8 * 4];
    bn::cnn_channel_block_ref<S>(image, 16, 8, weights, weights + 72, weights + 144, shift, plane, ref);
    bool same = true;
    for (uint32_t i = 0; i < 8 * 4; ++i) same = same && out[i] == ref[i];
    if (!same) ++g_failures;
    printf("cnn %-7s C=8 shift %u %08x%s\n", S::name, static_cast<unsigned>(shift),
           static_cast<unsigned>(hash(out, 8 * 4)), same ? "" : " MISMATCH");
  }
  // Other sides (the fast FP130 block's row and pool bounds), background-heavy images.
  static const uint32_t sides[] = {8, 9, 13, 24};
  for (uint32_t side : sides) {
    static int8_t big[24 * 24];
    static int32_t big_plane[22 * 22], got[8 * 16], want[8 * 16];
    const int8_t background = random_int8(0);
    for (uint32_t i = 0; i < side * side; ++i) big[i] = (next() & 3u) ? background : random_int8(0);
    const uint32_t so = bn::cnn_output_side(side);
    bn::cnn_channel_block<S>(big, side, 8, weights, weights + 72, weights + 144, 5, big_plane, got);
    bn::cnn_channel_block_ref<S>(big, side, 8, weights, weights + 72, weights + 144, 5, big_plane, want);
    bool same = true;
    for (uint32_t i = 0; i < 8 * so * so; ++i) same = same && got[i] == want[i];
    if (!same) ++g_failures;
    printf("cnn %-7s side %u %08x%s\n", S::name, static_cast<unsigned>(side),
           static_cast<unsigned>(hash(got, 8 * so * so)), same ? "" : " MISMATCH");
  }
}

}  // namespace

int main() {
  check_scheme<bn::Binary>();
  check_scheme<bn::Ternary>();
  check_scheme<bn::Sym2>();
  check_scheme<bn::Sym4>();
  check_scheme<bn::Int4>();
  check_scheme<bn::Int8>();
  check_scheme<bn::FP130>();
  check_scheme<bn::NF4>();
  check_shiftnorm();
  check_arith();
  check_cnn<bn::Int8>();
  check_cnn<bn::FP130>();
  printf("kernel_check done failures %u\n", static_cast<unsigned>(g_failures));
  fflush(stdout);
  exit(g_failures ? 1 : 0);  // explicit exit: QEMU turns it into its exit status
}
