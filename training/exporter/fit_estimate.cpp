// The fit estimate (fit_estimate.hpp): flash = weights + firmware code + embedded samples,
// RAM = scratch + a stack/globals allowance, against the chip's budget (bitnetmcu/targets.hpp).
#include "fit_estimate.hpp"

#include <algorithm>
#include <iterator>
#include <sstream>
#include <vector>

#include "bitnetmcu/kernels/dense_planes.hpp"
#include "bitnetmcu/layout.hpp"
#include "exporter.hpp"

namespace bitnetmcu::exporter {
namespace {

// Byte counts calibrated on the firmware of mcu/ch32v003 (-Os, app.cpp) linked for the shipped
// models and the random FC 256/64/64/64/10 models of every scheme (riscv64-unknown-elf-nm sizes:
// linked flash - weight arrays - embedded samples). Recalibrate when the kernels or the app
// change: the drift test prints every model's estimate and link.
//
// Startup, clock, USART, printing, the app, and the engine code every model runs (layer loop,
// ShiftNorm, argmax, the shared group scan of the dense kernels).
constexpr size_t kFirmwareBaseBytes = 1809;

struct KernelBytes {
  SchemeId scheme;
  size_t code;           // the scheme's dense kernel
  size_t no_multiplier;  // more code on a chip without `mul` (RV32EC)
};
// The dense kernel of each scheme, as linked beside the base. 8bit shares none of the group scan
// the base counts, hence its small figure; 8bit and Ternary link more code on RV32EC (no `mul`:
// GCC's multiply replacements). A scheme missing here gets the largest figures until it is
// calibrated (the drift test tells).
constexpr KernelBytes kDenseKernelBytes[] = {
    {SchemeId::Binary, 1276, 0}, {SchemeId::Ternary, 916, 156}, {SchemeId::Sym2, 1420, 0},
    {SchemeId::Sym4, 1090, 0},   {SchemeId::Int4, 1075, 0},     {SchemeId::Int8, 63, 248},
    {SchemeId::FP130, 1071, 0},  {SchemeId::NF4, 1158, 0},
};
// The bit-plane kernel (bitnetmcu/kernels/dense_planes.hpp) by scheme, as linked beside the base
// in place of the table kernel (fc_4bitsym and fc_4bit: linked flash - plane weights - embedded
// sample - base), and the stack it needs beyond the table kernel's (its run lists: 8 x 16 column
// addresses; measured bound 768 against 352).
constexpr KernelBytes kPlaneKernelBytes[] = {{SchemeId::Sym4, 1146, 0}, {SchemeId::Int4, 1146, 0}};
constexpr size_t kPlaneStackExtra = 416;

// A layer's kernel code: the table kernel's or (planes) the bit-plane kernel's.
KernelBytes dense_kernel_bytes(SchemeId id, bool planes) {
  const KernelBytes* table = planes ? kPlaneKernelBytes : kDenseKernelBytes;
  const size_t n = planes ? std::size(kPlaneKernelBytes) : std::size(kDenseKernelBytes);
  for (size_t i = 0; i < n; ++i)
    if (table[i].scheme == id) return table[i];
  return {id, 1440, 248};
}
// The CNN channel block by conv scheme: FP130 convolutions are unrolled shift-and-add tap rows;
// every other scheme (8bit, the SPEC's CNN) runs the generic multiply loop (its calls to the
// software multiply cost a little more code where there is no `mul`).
size_t cnn_block_bytes(SchemeId id, bool has_multiplier) {
  return id == SchemeId::FP130 ? 3485 : (has_multiplier ? 620 : 1090);
}

// RAM besides the scratch buffers: call stack (measured bounds 352..448) plus globals.
constexpr size_t kStackEstimate = 480;
constexpr size_t kFirmwareGlobals = 64;

// The estimate with the table kernels everywhere, or the plane kernel for the layers with plane traits.
TargetFit estimate(const PackedModel& model, const Target& target, uint32_t embedded_samples, bool planes) {
  TargetFit f;
  f.target = target.name;
  f.plane_kernels = planes;
  f.weight_bytes = model.weight_bytes;
  std::vector<SchemeId> kernels;
  std::vector<uint32_t> scratch_sizes;  // the plane kernels' static lane scratch, one per size
  f.code_bytes_estimate = kFirmwareBaseBytes + size_t(embedded_samples) * (model.input_size + 1);  // + label byte
  for (const auto& l : model.layers) {
    if (l.kind == LayerKind::Cnn) {
      f.code_bytes_estimate += cnn_block_bytes(l.scheme, target.has_multiplier);
      continue;
    }
    const bool plane_layer = planes && scheme_has_plane_traits(l.scheme);
    if (plane_layer) {  // the plane layout in flash instead of pack_columns
      f.weight_bytes += 4 * plane_column_words(l.n_in, l.n_out);
      f.weight_bytes -= 4 * l.words32.size();
      const uint32_t words = plane_scratch_words(l.n_out);
      if (std::find(scratch_sizes.begin(), scratch_sizes.end(), words) == scratch_sizes.end())
        scratch_sizes.push_back(words);
    }
    if (std::find(kernels.begin(), kernels.end(), l.scheme) != kernels.end()) continue;
    kernels.push_back(l.scheme);
    const KernelBytes k = dense_kernel_bytes(l.scheme, plane_layer);
    f.code_bytes_estimate += k.code + (target.has_multiplier ? 0 : k.no_multiplier);
  }
  f.flash_needed = f.weight_bytes + f.code_bytes_estimate;
  f.flash_budget = target.flash_bytes;
  f.scratch_bytes = model.scratch_bytes;
  for (uint32_t words : scratch_sizes) f.scratch_bytes += 4 * words;
  f.stack_estimate = kStackEstimate + kFirmwareGlobals + (scratch_sizes.empty() ? 0 : kPlaneStackExtra);
  f.ram_needed = f.scratch_bytes + f.stack_estimate;
  f.ram_budget = target.ram_bytes;
  f.borderline = f.flash_needed > f.flash_budget && f.flash_needed <= f.flash_budget + kFitMargin;
  f.fits = f.flash_needed <= f.flash_budget + kFitMargin && f.ram_needed <= f.ram_budget;
  return f;
}

}  // namespace

bool uses_plane_kernels(const PackedModel& model, uint32_t embedded_samples) {
  bool pays = false;
  for (const auto& l : model.layers) {
    if (l.kind == LayerKind::Cnn) return false;
    pays = pays || (scheme_has_plane_traits(l.scheme) && l.n_out >= kPlaneMinOutputs &&
                    uint64_t(l.n_in) * l.n_out >= kPlaneMinWeights);
  }
  if (!pays) return false;
  const TargetFit f = estimate(model, kCh32v003, embedded_samples, true);
  return f.flash_needed + kPlaneFitMargin <= f.flash_budget && f.ram_needed <= f.ram_budget;
}

const Target* find_target(const std::string& name) {
  for (const Target& t : kTargets)
    if (name == t.name) return &t;
  return nullptr;
}

TargetFit check_target(const PackedModel& model, const Target& target, uint32_t embedded_samples) {
  return estimate(model, target, embedded_samples, uses_plane_kernels(model, embedded_samples));
}

std::string TargetFit::describe() const {
  std::ostringstream s;
  s << target << ": flash " << flash_needed << " / " << flash_budget << " bytes (weights " << weight_bytes
    << " + engine code estimate " << code_bytes_estimate << ")"
    << (flash_needed > flash_budget + kFitMargin ? "  OVER" : "")
    << "; RAM " << ram_needed << " / " << ram_budget << " bytes (scratch " << scratch_bytes
    << " + stack/globals estimate " << stack_estimate << ")" << (ram_needed > ram_budget ? "  OVER" : "");
  if (plane_kernels) s << "; bit-plane dense kernels";
  if (borderline)
    s << "; flash within the estimate's error (" << kFitMargin << " bytes) of the budget: the firmware link decides";
  return s.str();
}

}  // namespace bitnetmcu::exporter
