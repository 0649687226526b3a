// The model file: a binary twin of an exported header, loaded at run time by the Python module
// and the exporter's verification. One definition of the format, writer and parser together.
//
//   "BNMCUMD1"  u32 version=1  u32 n_layers  u32 input_size  u32 num_classes
//   per layer:  u8 kind  u8 scheme  u8 shift  u8 flags(bit0: rowsum)  u32 n_in  u32 n_out
//               u32 weight_bytes (multiple of 4)  weights  [int32 rowsum[n_out]]
//   u32 crc32 (IEEE 802.3) of every byte before it.
// All integers little-endian; weights exactly as in flash (pack_columns words / int8 conv).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "layout.hpp"
#include "model.hpp"

namespace bitnetmcu {

constexpr uint32_t kModelFileVersion = 1;
constexpr size_t kModelFileMaxLayers = 16;

enum class ModelFileError : uint8_t {
  Ok = 0, TooShort, BadMagic, BadVersion, TooManyLayers, Truncated, BadLayer, BadChecksum, Misaligned,
  NoOutputs, BadFlags, BadShift, AccumulatorOverflow, BadRowSum
};
constexpr const char* model_file_error_text(ModelFileError e) {
  switch (e) {
    case ModelFileError::Ok: return "ok";
    case ModelFileError::TooShort: return "file too short to be a bitnetmcu model";
    case ModelFileError::BadMagic: return "not a bitnetmcu model file (magic BNMCUMD1 missing)";
    case ModelFileError::BadVersion: return "unsupported model file version";
    case ModelFileError::TooManyLayers: return "too many layers";
    case ModelFileError::Truncated: return "file truncated inside a layer";
    case ModelFileError::BadLayer: return "layer with unknown kind/scheme or inconsistent sizes";
    case ModelFileError::BadChecksum: return "checksum mismatch (file corrupt)";
    case ModelFileError::Misaligned: return "buffer not 4-byte aligned";
    case ModelFileError::NoOutputs: return "layer without outputs (expected at least 1; a CNN needs input side >= 12)";
    case ModelFileError::BadFlags: return "unknown flag bits (expected only bit 0, row sums, and only on dense layers)";
    case ModelFileError::BadShift: return "shift out of range (expected 0 for dense layers, 0..31 for CNN)";
    case ModelFileError::AccumulatorOverflow:
      return "int32 accumulator could overflow (expected fewer inputs for this scheme, or a larger CNN shift)";
    case ModelFileError::BadRowSum: return "row sums differ from the sums of the layer's weights";
  }
  return "unknown error";
}

struct ModelFileInfo {
  uint32_t n_layers, input_size, num_classes;
  uint32_t error_layer;  // index of the offending layer when parsing fails inside one, else UINT32_MAX
};

constexpr uint32_t crc32(const uint8_t* p, size_t n, uint32_t crc = 0) {
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

// Bytes of a layer's weight array in memory (dense words, or one int8 conv weight each).
inline size_t layer_weight_bytes_unpadded(const LayerDesc& d) {
  if (d.kind == LayerKind::Cnn) return 27u * d.n_out;
  size_t bytes = 0;
  visit_scheme(d.scheme, [&](auto s) {
    using S = decltype(s);
    bytes = dense_weight_words<S>(d.n_in, d.n_out) * sizeof(typename S::word_t);
  });
  return bytes;
}
// Bytes of a layer's weights as stored in the file: rounded up to 4.
inline size_t layer_weight_bytes(const LayerDesc& d) { return (layer_weight_bytes_unpadded(d) + 3u) & ~size_t(3); }

namespace detail {
inline void put32(uint8_t*& p, uint32_t v) {
  for (int i = 0; i < 4; ++i) *p++ = static_cast<uint8_t>(v >> (8 * i));
}
inline uint32_t get32(const uint8_t* p) {
  return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24;
}
}  // namespace detail

inline size_t model_file_size(const LayerDesc* layers, uint32_t n) {
  size_t size = 8 + 16 + 4;
  for (uint32_t l = 0; l < n; ++l)
    size += 16 + layer_weight_bytes(layers[l]) + (layers[l].rowsum ? 4u * layers[l].n_out : 0u);
  return size;
}

// Writes model_file_size() bytes to out. Host byte order must be little-endian for weights.
inline size_t write_model_file(const LayerDesc* layers, uint32_t n, uint8_t* out) {
  uint8_t* p = out;
  const char magic[8] = {'B', 'N', 'M', 'C', 'U', 'M', 'D', '1'};
  for (int i = 0; i < 8; ++i) *p++ = static_cast<uint8_t>(magic[i]);
  detail::put32(p, kModelFileVersion);
  detail::put32(p, n);
  detail::put32(p, static_cast<uint32_t>(layer_in_words(layers[0])));
  detail::put32(p, static_cast<uint32_t>(layer_out_words(layers[n - 1])));
  for (uint32_t l = 0; l < n; ++l) {
    const LayerDesc& d = layers[l];
    *p++ = static_cast<uint8_t>(d.kind);
    *p++ = static_cast<uint8_t>(d.scheme);
    *p++ = d.shift;
    *p++ = d.rowsum ? 1 : 0;
    detail::put32(p, d.n_in);
    detail::put32(p, d.n_out);
    const size_t wb = layer_weight_bytes(d);
    detail::put32(p, static_cast<uint32_t>(wb));
    const size_t raw = layer_weight_bytes_unpadded(d);  // the array may end before wb (uint16 Ternary words)
    const uint8_t* w = static_cast<const uint8_t*>(d.weights);
    for (size_t i = 0; i < wb; ++i) *p++ = i < raw ? w[i] : 0;
    if (d.rowsum)
      for (uint32_t o = 0; o < d.n_out; ++o) detail::put32(p, static_cast<uint32_t>(d.rowsum[o]));
  }
  const uint32_t crc = crc32(out, static_cast<size_t>(p - out));
  detail::put32(p, crc);
  return static_cast<size_t>(p - out);
}

namespace detail {
// Whether rowsum[o] == sum_i decode(W[o][i]) for every output: the premise of the accumulator
// bound with the background offset (dense_layer adds x[0] * rowsum[o] back).
template <class S>
inline bool rowsums_match(const typename S::word_t* w, uint32_t n_in, uint32_t n_out, const int32_t* rowsum) {
  const ColumnShape c = column_shape<S>(n_out);
  const size_t full_codes = c.full * S::codes_per_word;
  const typename S::word_t* tails = w + n_in * c.full;
  for (uint32_t o = 0; o < n_out; ++o) {
    int64_t sum = 0;
    for (uint32_t i = 0; i < n_in; ++i)
      sum += S::decode(o < full_codes ? S::code_at(w + i * c.full, o) : S::code_at(tails, i * c.tail + (o - full_codes)));
    if (sum != rowsum[o]) return false;
  }
  return true;
}

// The checks on one layer's values that the typed model makes at compile time.
inline ModelFileError check_layer_values(const LayerDesc& d) {
  if (layer_out_words(d) == 0) return ModelFileError::NoOutputs;
  ModelFileError err = ModelFileError::Ok;
  visit_scheme(d.scheme, [&](auto s) {
    using S = decltype(s);
    if (d.kind == LayerKind::Cnn) {
      if (!fits_accumulator(cnn_acc_bound(d.shift, S::max_abs))) err = ModelFileError::AccumulatorOverflow;
    } else if (!fits_accumulator(dense_acc_bound(d.n_in, S::max_abs, d.rowsum != nullptr))) {
      err = ModelFileError::AccumulatorOverflow;
    } else if (d.rowsum && !rowsums_match<S>(static_cast<const typename S::word_t*>(d.weights), d.n_in, d.n_out,
                                             d.rowsum)) {
      err = ModelFileError::BadRowSum;
    }
  });
  return err;
}
}  // namespace detail

// Parses a model file in place: layers[] point into `buf`, which must stay alive, be 4-byte
// aligned and little-endian order must match the host.
inline ModelFileError parse_model_file(const uint8_t* buf, size_t len, LayerDesc* layers, uint32_t max_layers,
                                       ModelFileInfo* info) {
  info->error_layer = UINT32_MAX;
  if (reinterpret_cast<uintptr_t>(buf) % 4) return ModelFileError::Misaligned;
  if (len < 8 + 16 + 4) return ModelFileError::TooShort;
  const char* magic = "BNMCUMD1";
  for (int i = 0; i < 8; ++i)
    if (buf[i] != static_cast<uint8_t>(magic[i])) return ModelFileError::BadMagic;
  if (detail::get32(buf + 8) != kModelFileVersion) return ModelFileError::BadVersion;
  if (crc32(buf, len - 4) != detail::get32(buf + len - 4)) return ModelFileError::BadChecksum;
  info->n_layers = detail::get32(buf + 12);
  info->input_size = detail::get32(buf + 16);
  info->num_classes = detail::get32(buf + 20);
  if (info->n_layers == 0 || info->n_layers > max_layers) return ModelFileError::TooManyLayers;
  if (info->num_classes == 0) return ModelFileError::NoOutputs;
  size_t pos = 24;
  const size_t end = len - 4;
  for (uint32_t l = 0; l < info->n_layers; ++l) {
    info->error_layer = l;
    if (pos + 16 > end) return ModelFileError::Truncated;
    LayerDesc& d = layers[l];
    const uint8_t kind = buf[pos], scheme = buf[pos + 1], flags = buf[pos + 3];
    if (kind > 1 || scheme >= kNumSchemes) return ModelFileError::BadLayer;
    d.kind = static_cast<LayerKind>(kind);
    d.scheme = static_cast<SchemeId>(scheme);
    d.shift = buf[pos + 2];
    d.n_in = detail::get32(buf + pos + 4);
    d.n_out = detail::get32(buf + pos + 8);
    const uint32_t wb = detail::get32(buf + pos + 12);
    pos += 16;
    if (d.n_in == 0 || d.n_out == 0 || d.n_in > 65536 || d.n_out > 65536) return ModelFileError::BadLayer;
    if (d.kind == LayerKind::Cnn && (d.n_in < 8 || d.n_in > 64)) return ModelFileError::BadLayer;
    if (d.shift > (d.kind == LayerKind::Cnn ? 31 : 0)) return ModelFileError::BadShift;
    if ((flags & ~1u) || (d.kind == LayerKind::Cnn && (flags & 1u))) return ModelFileError::BadFlags;
    if (wb != layer_weight_bytes(d)) return ModelFileError::BadLayer;
    if (pos + wb > end) return ModelFileError::Truncated;
    d.weights = buf + pos;
    pos += wb;
    d.rowsum = nullptr;
    if (flags & 1) {
      if (pos + 4u * d.n_out > end) return ModelFileError::Truncated;
      d.rowsum = reinterpret_cast<const int32_t*>(buf + pos);
      pos += 4u * d.n_out;
    }
    const uint32_t in_expected =
        l == 0 ? info->input_size : static_cast<uint32_t>(layer_out_words(layers[l - 1]));
    if (layer_in_words(d) != in_expected) return ModelFileError::BadLayer;
    const ModelFileError values = detail::check_layer_values(d);
    if (values != ModelFileError::Ok) return values;
  }
  info->error_layer = UINT32_MAX;
  if (pos != end) return ModelFileError::Truncated;
  if (layer_out_words(layers[info->n_layers - 1]) != info->num_classes) return ModelFileError::BadLayer;
  return ModelFileError::Ok;
}

}  // namespace bitnetmcu
