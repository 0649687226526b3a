// Whether a packed model fits a chip, estimated before any firmware is built: the exporter's
// --target check, the kTargetsCh32v003 line of a model header and the sweep's flash/RAM columns
// when no firmware was linked. The firmware link (mcu/ch32v003) is the exact check; the ctest
// "fit estimate: <model> ..." (tests/export/fit_estimate_drift.cpp) keeps this estimate within
// kFitMargin bytes of the linked flash of every shipped model. No LibTorch here.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "bitnetmcu/targets.hpp"

namespace bitnetmcu::exporter {

struct PackedModel;

struct TargetFit {
  std::string target;
  size_t weight_bytes = 0, code_bytes_estimate = 0, flash_needed = 0, flash_budget = 0;
  size_t scratch_bytes = 0, stack_estimate = 0, ram_needed = 0, ram_budget = 0;
  bool fits = false;        // within the budget, or within the estimate's error of it
  bool borderline = false;  // within kFitMargin of the budget: the firmware link decides
  // The dense layers with plane traits run the bit-plane kernel (bitnetmcu::DenseKernel::Planes):
  // the header says so, and the estimate counts that kernel's code, layout and stack.
  bool plane_kernels = false;
  std::string describe() const;
};

// The flash estimate is within this many bytes of the linked image (either way) for every
// shipped model on both chips (checked by ctest). Closer to the budget than that, the exporter
// accepts the model with a warning and the firmware build's exact link check decides.
constexpr size_t kFitMargin = 100;
// The RAM estimate (scratch + a fixed stack/globals allowance) against the linked RAM including
// the measured stack bound: looser, since the stack bound depends on the call graph.
constexpr size_t kRamFitMargin = 384;

// Test samples a chip image embeds from <name>.samples.h (bitnetmcu-export --samples; flash is
// 16 KB): the first kChipSamples of them. Without a samples file the firmware embeds one MNIST
// image (mcu/ch32v003/test_images.h).
constexpr uint32_t kChipSamples = 2;

// The bit-plane kernel takes fewer instructions but more code, flash for layers whose outputs are
// not a multiple of 8, and stack. A model gets it when it has a dense layer with plane traits of
// at least kPlaneMinOutputs outputs and kPlaneMinWeights weights (on smaller layers the kernel's
// fixed costs eat the gain: cancer_fc, 30/32/16/2, ran 14,443 instructions against 13,251), no
// CNN block (whose RAM the block needs, and whose dense layers are ~1 % of its work), and its
// CH32V003 image with it is estimated to fit with kPlaneFitMargin bytes of flash to spare.
constexpr size_t kPlaneFitMargin = 64;
constexpr uint32_t kPlaneMinOutputs = 32, kPlaneMinWeights = 64 * 64;
bool uses_plane_kernels(const PackedModel& model, uint32_t embedded_samples = 1);

const bitnetmcu::Target* find_target(const std::string& name);  // nullptr if unknown
// embedded_samples: test samples of model.input_size int8 values (+ a label byte each) in the
// firmware image. The estimate is for the kernels uses_plane_kernels picks.
TargetFit check_target(const PackedModel& model, const bitnetmcu::Target& target, uint32_t embedded_samples = 1);

}  // namespace bitnetmcu::exporter
