#include "checkpoint_container.hpp"

#include <zlib.h>

#include <cstring>
#include <stdexcept>

namespace bitnetmcu::train {
namespace {

// Bounds-checked reader; every failure names the file and the entry being read.
struct Reader {
  const std::string& path;
  const std::string& bytes;
  size_t pos = 0;
  size_t end = 0;  // excludes the CRC
  std::string context = "header";

  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("checkpoint " + path + ": " + what + " (at byte " + std::to_string(pos) +
                             ", reading " + context + ")");
  }
  void need(size_t n) {
    // pos > end for a file shorter than magic + CRC: end - pos would wrap.
    if (pos > end || n > end - pos) fail("file is truncated");
  }
  template <class T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, bytes.data() + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }
  std::string get_string(size_t n) {
    need(n);
    std::string s = bytes.substr(pos, n);
    pos += n;
    return s;
  }
};

}  // namespace

uint32_t checkpoint_crc32(const std::string& bytes, size_t n) {
  uLong crc = crc32(0L, Z_NULL, 0);
  // zlib takes at most UINT_MAX bytes a call
  for (size_t done = 0; done < n;) {
    const size_t chunk = n - done < (1u << 30) ? n - done : (1u << 30);
    crc = crc32(crc, reinterpret_cast<const Bytef*>(bytes.data() + done), static_cast<uInt>(chunk));
    done += chunk;
  }
  return static_cast<uint32_t>(crc);
}

std::vector<CheckpointEntry> parse_checkpoint_container(const std::string& path, const std::string& bytes) {
  Reader r{path, bytes, 0, bytes.size() >= 4 ? bytes.size() - 4 : 0, "header"};
  if (bytes.size() < sizeof kCheckpointMagic || std::memcmp(bytes.data(), kCheckpointMagic, sizeof kCheckpointMagic) != 0)
    throw std::runtime_error("checkpoint " + path +
                             ": not a bitnetmcu checkpoint (the file does not start with BNMCUCK1)");
  r.pos = sizeof kCheckpointMagic;
  const uint32_t version = r.get<uint32_t>();
  if (version != kCheckpointVersion)
    r.fail("unsupported format version " + std::to_string(version) + " (expected " +
           std::to_string(kCheckpointVersion) + ")");
  const uint32_t n_entries = r.get<uint32_t>();

  std::vector<CheckpointEntry> entries;
  for (uint32_t e = 0; e < n_entries; ++e) {
    r.context = "entry " + std::to_string(e);
    CheckpointEntry entry;
    entry.name = r.get_string(r.get<uint16_t>());
    r.context = "entry " + std::to_string(e) + " '" + entry.name + "'";
    const uint8_t type = r.get<uint8_t>();
    if (type == kCheckpointText) {
      entry.size = static_cast<size_t>(r.get<uint64_t>());
    } else if (type == kCheckpointFloat32 || type == kCheckpointInt64) {
      const uint8_t ndim = r.get<uint8_t>();
      int64_t numel = 1;
      for (uint8_t k = 0; k < ndim; ++k) {
        const int64_t d = r.get<int64_t>();
        if (d < 0 || (d > 0 && numel > (int64_t{1} << 40) / d)) r.fail("invalid dimension " + std::to_string(d));
        numel *= d;
        entry.dims.push_back(d);
      }
      entry.size = static_cast<size_t>(numel) * (type == kCheckpointFloat32 ? 4 : 8);
    } else {
      r.fail("unknown entry type " + std::to_string(type));
    }
    entry.type = static_cast<CheckpointEntryType>(type);
    r.need(entry.size);
    entry.offset = r.pos;
    r.pos += entry.size;
    entries.push_back(std::move(entry));
  }
  if (bytes.size() < 4 || r.pos != r.end) {
    r.context = "the CRC";
    r.fail(bytes.size() < 4 || r.pos > r.end ? "file is truncated" : "unexpected bytes after the last entry");
  }
  uint32_t stored;
  std::memcpy(&stored, bytes.data() + r.end, 4);
  if (stored != checkpoint_crc32(bytes, r.end))
    throw std::runtime_error("checkpoint " + path + ": CRC32 mismatch (file is corrupt or was modified)");
  return entries;
}

}  // namespace bitnetmcu::train
