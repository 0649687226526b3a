// The byte-level checkpoint container of docs/checkpoint-format.md, without LibTorch: the
// parser that load_checkpoint (checkpoint.cpp) builds tensors from, separate so that it can be
// fuzzed and tested on its own.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace bitnetmcu::train {

constexpr char kCheckpointMagic[8] = {'B', 'N', 'M', 'C', 'U', 'C', 'K', '1'};
constexpr uint32_t kCheckpointVersion = 1;
enum CheckpointEntryType : uint8_t { kCheckpointFloat32 = 0, kCheckpointInt64 = 1, kCheckpointText = 2 };

struct CheckpointEntry {
  std::string name;
  CheckpointEntryType type;
  std::vector<int64_t> dims;  // tensors only
  size_t offset = 0, size = 0;  // the text, or the tensor's raw little-endian data, in the file's bytes
};

// Parses the bytes of the checkpoint file `path` (which only names it in errors). Throws
// std::runtime_error naming the file, the byte position and the entry being read (foreign,
// truncated, CRC mismatch, unsupported version or entry type, invalid dimension).
std::vector<CheckpointEntry> parse_checkpoint_container(const std::string& path, const std::string& bytes);

uint32_t checkpoint_crc32(const std::string& bytes, size_t n);

}  // namespace bitnetmcu::train
