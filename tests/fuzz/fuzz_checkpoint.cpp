// libFuzzer target: the checkpoint container parser (training/checkpoint_container.cpp), the
// byte-level half of load_checkpoint, without LibTorch. Each input is parsed as given and again
// with its CRC recomputed, so mutations reach the entries behind the checksum. Only the
// documented error (std::runtime_error naming the file) may escape.
#include <cstring>
#include <stdexcept>
#include <string>

#include "training/checkpoint_container.hpp"

using namespace bitnetmcu::train;

namespace {
void parse(const std::string& bytes) {
  try {
    for (const CheckpointEntry& e : parse_checkpoint_container("fuzz.pt", bytes))
      if (e.offset > bytes.size() || e.size > bytes.size() - e.offset) __builtin_trap();  // entry outside the file
  } catch (const std::runtime_error& e) {
    if (!std::strstr(e.what(), "fuzz.pt")) __builtin_trap();  // every error names the file
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string bytes(reinterpret_cast<const char*>(data), size);
  parse(bytes);
  if (size >= 4) {
    const uint32_t crc = checkpoint_crc32(bytes, size - 4);
    std::memcpy(&bytes[size - 4], &crc, 4);
    parse(bytes);
  }
  return 0;
}
