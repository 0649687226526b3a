// End-to-end: a header exported at build time (fc_tiny.h) is compiled in, and its Net::run must
// reproduce the exporter's engine predictions on every image of the exporter's dump.
// Compiled with -Wall -Wextra -Werror: this is also the host compile check of the header.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

#include "fc_tiny.h"
#include "mnist_test_images.h"

namespace {

uint32_t get32(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }

// Reads the exporter's --predictions dump; returns false (with a message) when malformed.
bool read_dump(const char* path, uint32_t& n, std::vector<int8_t>& images, std::vector<uint8_t>& labels,
               std::vector<uint8_t>& predictions) {
  std::ifstream f(path, std::ios::binary);
  const std::vector<uint8_t> b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (b.size() < 16 || std::memcmp(b.data(), "BNMCUPR1", 8) != 0) {
    std::fprintf(stderr, "%s: not a predictions dump (magic BNMCUPR1 missing)\n", path);
    return false;
  }
  n = get32(b.data() + 8);
  const uint32_t input = get32(b.data() + 12);
  if (input != BITNETMCU_MODEL_NAMESPACE::kInputSize || b.size() != 16 + size_t(n) * (input + 2)) {
    std::fprintf(stderr, "%s: size %zu does not match %u images of %u values\n", path, b.size(), n, input);
    return false;
  }
  const uint8_t* p = b.data() + 16;
  images.assign(reinterpret_cast<const int8_t*>(p), reinterpret_cast<const int8_t*>(p) + size_t(n) * input);
  labels.assign(p + size_t(n) * input, p + size_t(n) * (input + 1));
  predictions.assign(p + size_t(n) * (input + 1), p + size_t(n) * (input + 2));
  return true;
}

int check(const char* dump_path) {
  namespace model = BITNETMCU_MODEL_NAMESPACE;
  uint32_t n = 0;
  std::vector<int8_t> images;
  std::vector<uint8_t> labels, expected;
  if (!read_dump(dump_path, n, images, labels, expected)) return 1;
  static int32_t scratch[model::Net::scratch_words];
  uint32_t mismatches = 0, correct = 0;
  for (uint32_t i = 0; i < n; ++i) {
    const uint32_t got = model::Net::run(images.data() + size_t(i) * model::kInputSize, scratch);
    if (got != expected[i] && mismatches++ < 10)
      std::fprintf(stderr, "image %u: header model says %u, exporter said %u\n", i, got, expected[i]);
    correct += got == labels[i];
  }
  // The test-images header holds the first images of the same dump.
  for (uint32_t i = 0; i < bitnetmcu_test_images::kCount; ++i)
    if (std::memcmp(bitnetmcu_test_images::kImages[i], images.data() + size_t(i) * model::kInputSize, model::kInputSize) ||
        bitnetmcu_test_images::kLabels[i] != labels[i]) {
      std::fprintf(stderr, "mnist_test_images.h image %u differs from the exporter's dump\n", i);
      return 1;
    }
  std::printf("%s: %u images, %u mismatches vs the exporter, %u correct (header says kIntCorrect = %u)\n",
              model::kName, n, mismatches, correct, model::kIntCorrect);
  if (n == model::kVerifiedImages && correct != model::kIntCorrect) {
    std::fprintf(stderr, "accuracy differs from the header's kIntCorrect\n");
    return 1;
  }
  return mismatches == 0 && n > 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s PREDICTIONS_DUMP\n", argv[0]);
    return 2;
  }
  return check(argv[1]);
}
