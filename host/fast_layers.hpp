// Host fast path: the decoded, SIMD-friendly form of one layer, shared by the per-ISA kernel
// files. Plain data only (no inline functions): the kernel files are compiled with different
// instruction-set flags, and an inline function defined here would be emitted by each of them
// and merged by the linker, so a non-AVX2 machine could end up running an AVX2 copy.
#pragma once
#include <stdint.h>

namespace bitnetmcu {
namespace host {

// Weights of a dense layer as int16 pairs for pmaddwd: w[p][o][0..1] = W[o][2p], W[o][2p+1]
// (decoded by the engine's scheme traits; a missing odd input has weight 0). n_out_pad is a
// multiple of kOutBlock, the padding outputs have weight 0.
struct DenseData {
  const int16_t* w;
  const int32_t* rowsum;  // the model file's row sums (background rewrite), or null
  uint32_t n_in, n_out, n_pairs, n_out_pad;
};

// The CNN block (conv1 -> dwconv2 -> pool -> dwconv3 -> pool, SPEC §6) with channels in SIMD
// lanes: every plane is [y][x][channel], channel padded to c_pad (multiple of kOutBlock).
//   w1 [5][c_pad][2]: conv1 taps paired (0,1) (2,3) (4,5) (6,7) (8,-), tap t = 3 ky + kx;
//   w2a/w3a [3][c_pad][2]: for kx, the taps (ky=0, ky=1); w2b/w3b [3][c_pad][2]: (ky=2, 0), so a
//   pmaddwd over a plane whose lanes pair rows y and y+1 adds two taps at once;
//   w1sum[c] = sum of conv1's taps (conv1 runs on image - background, adding back bg * w1sum).
struct CnnData {
  const int16_t *w1, *w2a, *w2b, *w3a, *w3b;
  const int32_t* w1sum;
  uint32_t side, channels, c_pad, shift;
};

constexpr uint32_t kOutBlock = 16;  // output / channel padding: one AVX-512 or two AVX2 vectors

// Scratch of one thread for the kernels, sized by FastModel.
struct KernelScratch {
  int32_t* pair_values;  // >= max pairs of any dense layer
  uint32_t* pair_index;
  int32_t *plane_a, *plane_b;  // >= (side-2)^2 * c_pad + c_pad + 6 (side-2)^2 each, 64-byte aligned
};

// The kernels of one instruction set. dense: acc[0, n_out_pad) = W x (exactly the engine's
// dense_layer, background rewrite included). cnn: out[C][s][s], channel-major like the engine;
// returns false (out unspecified) when a plane value does not fit int16, the range the pair
// multiply needs -- the caller then runs the engine's scalar path for that image.
struct KernelSet {
  const char* name;
  void (*dense)(const DenseData& d, const int8_t* x, int32_t* acc, const KernelScratch& s);
  bool (*cnn)(const CnnData& d, const int8_t* image, int32_t* out, const KernelScratch& s);
};

// Defined only on x86-64 (kernels_sse2.cpp, kernels_avx2.cpp, kernels_avx512.cpp).
extern const KernelSet kSse2Kernels;
extern const KernelSet kAvx2Kernels;
extern const KernelSet kAvx512Kernels;

}  // namespace host
}  // namespace bitnetmcu
