// The IDX reader (raw or gzip-compressed), without LibTorch: data.hpp builds MNIST splits
// from it; on its own so that it can be fuzzed.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace bitnetmcu::train {

struct IdxArray {
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;  // row-major, prod(dims) bytes
};
// Reads an unsigned-byte IDX file, gzip-compressed or not. Throws std::runtime_error naming the
// file on a missing file, wrong magic, or a length that does not match the dimensions.
IdxArray read_idx(const std::string& path);

}  // namespace bitnetmcu::train
