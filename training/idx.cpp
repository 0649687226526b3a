#include "idx.hpp"

#include <zlib.h>

#include <cstdint>
#include <filesystem>
#include <stdexcept>

namespace bitnetmcu::train {
namespace fs = std::filesystem;

IdxArray read_idx(const std::string& path) {
  if (!fs::exists(path)) throw std::runtime_error(path + ": file not found");
  // gzread passes uncompressed files through unchanged, so one path reads both kinds.
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) throw std::runtime_error(path + ": cannot open file");
  std::vector<uint8_t> bytes;
  uint8_t buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof buf)) > 0) bytes.insert(bytes.end(), buf, buf + n);
  int err = 0;
  const char* msg = gzerror(f, &err);
  const std::string gz_message = (n < 0 && msg) ? msg : "";
  gzclose(f);
  if (n < 0) throw std::runtime_error(path + ": read error (" + gz_message + "): truncated or corrupt gzip data");

  auto u32_at = [&](size_t pos) {
    return (uint32_t{bytes[pos]} << 24) | (uint32_t{bytes[pos + 1]} << 16) | (uint32_t{bytes[pos + 2]} << 8) |
           uint32_t{bytes[pos + 3]};
  };
  if (bytes.size() < 4 || bytes[0] != 0 || bytes[1] != 0 || bytes[2] != 0x08 || bytes[3] == 0)
    throw std::runtime_error(path + ": not an unsigned-byte IDX file (expected magic 00 00 08 <ndim>)");
  const size_t ndim = bytes[3];
  const size_t header = 4 + 4 * ndim;
  if (bytes.size() < header)
    throw std::runtime_error(path + ": truncated header (" + std::to_string(bytes.size()) + " bytes)");
  IdxArray a;
  size_t expected = 1;
  bool overflow = false;  // a product past 2^64 cannot be printed, nor fit any file
  std::string dims_text;
  for (size_t d = 0; d < ndim; ++d) {
    const size_t dim = u32_at(4 + 4 * d);
    a.dims.push_back(static_cast<int64_t>(dim));
    dims_text += (d ? " x " : "") + std::to_string(dim);
    if (dim != 0 && expected > SIZE_MAX / dim) overflow = true;
    expected *= dim;
  }
  const size_t have = bytes.size() - header;
  if (overflow || have < expected)
    throw std::runtime_error(path + ": truncated: dimensions " + dims_text + " need " +
                             (overflow ? "more than 2^64" : std::to_string(expected)) +
                             " data bytes, the file has " + std::to_string(have));
  if (have > expected)
    throw std::runtime_error(path + ": " + std::to_string(have - expected) +
                             " unexpected bytes after the data the header describes");
  a.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(header), bytes.end());
  return a;
}

}  // namespace bitnetmcu::train
