// The exporter's LibTorch-free core (library bitnetmcu_export_core): quantized tensors ->
// packed model (engine traits only) -> model header, model file, report, plots, test-sample
// headers. See docs/model-header.md for the header. The torch side -- reading a checkpoint into
// quantized tensors, the independent LibTorch emulation, the whole run -- is the library
// bitnetmcu_exporter (run_export.hpp, emulate.hpp), built on this one.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "bitnetmcu/model.hpp"
#include "bitnetmcu/schemes.hpp"
#include "bitnetmcu/targets.hpp"
#include "fit_estimate.hpp"

namespace bitnetmcu::exporter {

// Every failure of the exporter: the message names the file / layer / field and what was expected.
struct ExportError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Value histogram and code-space use of one quantized tensor.
struct CodeStats {
  std::vector<int32_t> code_values;  // decode(code) for every code of the scheme
  std::vector<uint64_t> histogram;   // count per code
  double entropy_bits = 0;           // Shannon entropy of the code distribution, bits/weight
  uint32_t codes_used = 0, code_space = 0;
};

// One layer of the checkpoint (fc1, conv2, ...), quantized with its clip scalar.
struct QuantizedTensor {
  std::string name;
  bitnetmcu::SchemeId scheme{};
  std::vector<int64_t> shape;  // [out, in] (dense) or [C, 1, 3, 3] (conv)
  std::vector<uint8_t> codes;  // row-major, scheme codes (engine encode)
  std::vector<int32_t> ints;   // decode(codes): the integers inference multiplies by
  CodeStats stats;
  uint64_t weight_bits = 0;    // codes as stored, padding excluded
  size_t packed_bytes = 0;     // bytes in flash, padding included
};

// One engine layer with the packed data it points to.
struct EngineLayer {
  std::string name;  // "fc1", ..., or "cnn" for the conv block
  bitnetmcu::LayerKind kind{};
  bitnetmcu::SchemeId scheme{};
  uint8_t shift = 0;
  uint32_t n_in = 0, n_out = 0;   // dense: inputs/outputs; cnn: image side / channels
  std::vector<uint32_t> words32;  // pack_columns words (all schemes but Ternary)
  std::vector<uint16_t> words16;  // pack_columns words (Ternary)
  std::vector<uint8_t> conv;      // cnn: codes, one byte each, [conv1..3][C][9]
  std::vector<int32_t> rowsum;    // first layer only: sum_i decode(W[o][i])
  bitnetmcu::LayerDesc desc() const;
  // Bytes per row sum in the header: int16 when every sum fits (half the flash), else int32.
  size_t rowsum_element_bytes() const;
};

struct PackedModel {
  std::vector<QuantizedTensor> tensors;
  std::vector<EngineLayer> layers;
  uint32_t input_size = 0, num_classes = 0;
  uint64_t weight_bits = 0;
  size_t weight_bytes = 0, scratch_bytes = 0;
  std::vector<bitnetmcu::LayerDesc> descs() const;
};

// Checks shapes and packs the tensors (dense fc*, optional conv1..3 in front) with the engine.
// cnn_shift: activation shift of the conv block (bitnetmcu::kCnnShift). Throws ExportError for unpackable shapes.
// input_size: the network's inputs (an image's side^2 or the feature count); a CNN block takes
// a square image of side sqrt(input_size).
PackedModel pack_model(std::vector<QuantizedTensor> tensors, uint32_t cnn_shift, uint32_t input_size = 256);

// The packed model of a run-time layer list (a parsed model file): layers, sizes and scratch
// as pack_model counts them; no tensors (weight_bits 0).
PackedModel packed_model_from_layers(const bitnetmcu::LayerDesc* layers, uint32_t n, uint32_t input_size);

// Fills tensor.stats / weight_bits / packed_bytes from its codes.
void compute_stats(QuantizedTensor& tensor);

// Engine predictions (run_layers on the packed data) for n images of input_size int8 each.
// logits: n * num_classes accumulators of the last layer.
void run_engine(const PackedModel& model, const int8_t* images, size_t n, std::vector<uint8_t>& predictions,
                std::vector<int32_t>& logits);

// ---- verification ----------------------------------------------------------------------------
struct Verification {
  uint32_t n_images = 0;
  uint32_t float_correct = 0;      // float QAT model
  uint32_t int_correct = 0;        // engine on the packed weights
  uint32_t emulation_correct = 0;  // independent LibTorch integer emulation
  uint32_t prediction_mismatches = 0, logit_mismatches = 0;  // engine vs emulation
  double float_seconds = 0, engine_seconds = 0, emulation_seconds = 0;
  std::vector<int8_t> images;  // n_images * input_size, int8 (SPEC §2)
  std::vector<uint8_t> labels, int_predictions;
  std::vector<float> raw;      // feature models: the raw values (n_images * input_size) images was quantized from
  double float_accuracy() const { return n_images ? double(float_correct) / n_images : 0; }
  double int_accuracy() const { return n_images ? double(int_correct) / n_images : 0; }
};

// ---- outputs ----------------------------------------------------------------------------------
struct HeaderMeta {
  std::string name, generated_by, dataset, source_checkpoint, checkpoint_crc32, config_yaml;
  std::vector<std::string> class_names = {};  // kClassNames (empty: not written)
  std::string input_description = {};         // kInputDescription
  uint32_t input_side = 0;               // kInputSide: image side, 0 for feature vectors
  // global / per_feature input quantization (kInputOffset, kInputScale, quantize_input()); empty: per_image
  std::string input_quantization = "per_image";
  std::vector<float> input_offset = {}, input_scale = {};
  const Verification* verification = nullptr;
  // The CH32V003 fit estimate: a model that does not fit says kTargetsCh32v003 = false, and the
  // firmware build (mcu/) then gives it only a QEMU twin. Null: assume it fits.
  const TargetFit* ch32v003_fit = nullptr;
};
std::string model_header_text(const PackedModel& model, const HeaderMeta& meta);
std::vector<uint8_t> model_file_bytes(const PackedModel& model);
std::string report_json(const PackedModel& model, const HeaderMeta& meta, const TargetFit* fit);
std::string stats_table(const PackedModel& model);  // per-layer lines for the terminal
std::string weights_histogram_svg(const PackedModel& model, const std::string& title);
// fc1 rows as 16x16 tiles (conv1 kernels as 3x3), PNG; empty when there is no first layer.
std::vector<uint8_t> first_layer_png(const PackedModel& model);
std::string test_images_header_text(const int8_t* images, const uint8_t* labels, size_t n, size_t input_size,
                                    const std::string& generated_by);
// <name>.samples.h: the first n test samples as the engine takes them, namespace
// bitnetmcu_test_images (kCount, kSide, kLabels, kImages); a chip build defining
// BITNETMCU_CHIP_SAMPLES sees only the first `chip_count` (kChipSamples; flash is 16 KB).
// raw (may be null): the raw float values of feature models, as kRaw (not in chip builds).
std::string samples_header_text(const int8_t* images, const float* raw, const uint8_t* labels, size_t n,
                                size_t input_size, uint32_t side, size_t chip_count, const std::string& what,
                                const std::string& generated_by);
// "BNMCUPR1" u32 n u32 input_size, int8 images[n][input_size], u8 labels[n], u8 predictions[n].
std::vector<uint8_t> predictions_file_bytes(const Verification& v, size_t input_size);

// Writes a file atomically (temp + rename); throws ExportError naming the path.
void write_file(const std::string& path, const std::string& text);
void write_file(const std::string& path, const std::vector<uint8_t>& bytes);
bool is_valid_identifier(const std::string& name);

}  // namespace bitnetmcu::exporter
