// The multiplication-free kernels, instantiated out of line under fixed names, for the object-code
// inspection of the target proof (check_mulfree.cmake): compiled for rv32ec and rv32emc at -Os
// and -O2, none of these may contain a `mul` instruction or a call to __mulsi3 (SPEC §6).
// mul_control() is the control: 8bit on rv32emc must show `mul`, proving the check can see one.
#include <bitnetmcu/bitnetmcu.hpp>

namespace bn = bitnetmcu;

#define BITNETMCU_MULFREE_DENSE(S, fn)                                                                        \
  extern "C" void mulfree_dense_##fn(const bn::S::word_t* w, const int32_t* rowsum, uint32_t n_in,            \
                                     uint32_t n_out, const int8_t* x, int32_t* acc) {                         \
    bn::dense_layer<bn::S>(w, rowsum, n_in, n_out, x, acc);                                                   \
  }
BITNETMCU_MULFREE_DENSE(Binary, binary)
BITNETMCU_MULFREE_DENSE(Ternary, ternary)
BITNETMCU_MULFREE_DENSE(Sym2, 2bitsym)
BITNETMCU_MULFREE_DENSE(Sym4, 4bitsym)
BITNETMCU_MULFREE_DENSE(FP130, fp130)
BITNETMCU_MULFREE_DENSE(NF4, nf4)

extern "C" void mulfree_shiftnorm_relu(const int32_t* acc, uint32_t n, int8_t* out) { bn::shiftnorm_relu(acc, n, out); }
extern "C" uint32_t mulfree_argmax(const int32_t* v, uint32_t n) { return bn::argmax(v, n); }
// FP130 convolutions are shift-only as well.
extern "C" void mulfree_cnn_fp130(const uint8_t* w, const int8_t* image, int32_t* plane, int32_t* out) {
  bn::cnn_layer<bn::FP130>(w, 16, 8, 4, image, plane, out);
}
