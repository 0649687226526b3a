#include "checkpoint.hpp"

#include <zlib.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <unistd.h>

namespace bitnetmcu::train {
namespace {

constexpr char kMagic[8] = {'B', 'N', 'M', 'C', 'U', 'C', 'K', '1'};
constexpr uint32_t kVersion = 1;
enum EntryType : uint8_t { kFloat32 = 0, kInt64 = 1, kText = 2 };

// Little-endian writer into a byte buffer (the host is little-endian; checked below).
struct Writer {
  std::string bytes;
  template <class T>
  void put(T v) {
    bytes.append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  void put_bytes(const void* p, size_t n) { bytes.append(static_cast<const char*>(p), n); }
  void put_name(const std::string& name) {
    if (name.size() > 0xFFFF) throw std::runtime_error("checkpoint entry name too long: " + name);
    put<uint16_t>(static_cast<uint16_t>(name.size()));
    bytes += name;
  }
  void put_text(const std::string& name, const std::string& text) {
    put_name(name);
    put<uint8_t>(kText);
    put<uint64_t>(text.size());
    bytes += text;
  }
  void put_tensor(const std::string& name, const torch::Tensor& t) {
    const torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
    uint8_t type;
    if (c.scalar_type() == torch::kFloat32) type = kFloat32;
    else if (c.scalar_type() == torch::kInt64) type = kInt64;
    else throw std::runtime_error("checkpoint entry " + name + ": only float32 and int64 tensors are stored");
    put_name(name);
    put<uint8_t>(type);
    put<uint8_t>(static_cast<uint8_t>(c.dim()));
    for (int64_t d : c.sizes()) put<int64_t>(d);
    put_bytes(c.data_ptr(), c.numel() * c.element_size());
  }
};

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
    if (n > end - pos) fail("file is truncated");
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

static_assert(sizeof(float) == 4, "float32 expected");
bool host_is_little_endian() {
  const uint16_t one = 1;
  return *reinterpret_cast<const uint8_t*>(&one) == 1;
}

uint32_t crc32_of(const std::string& bytes, size_t n) {
  return static_cast<uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(n)));
}

}  // namespace

std::string Checkpoint::meta_value(const std::string& key, const std::string& fallback) const {
  std::istringstream in(meta);
  std::string line;
  const std::string prefix = key + ":";
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0) {
      const size_t start = line.find_first_not_of(' ', prefix.size());
      return start == std::string::npos ? "" : line.substr(start);
    }
  return fallback;
}

void Checkpoint::set_meta_value(const std::string& key, const std::string& value) {
  std::istringstream in(meta);
  std::string line, out;
  bool replaced = false;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) line = key + ": " + value, replaced = true;
    out += line + "\n";
  }
  if (!replaced) out += key + ": " + value + "\n";
  meta = out;
}

void save_checkpoint_atomic(const std::string& path, const Checkpoint& ckpt) {
  if (!host_is_little_endian()) throw std::runtime_error("checkpoint: big-endian hosts are not supported");
  Writer w;
  w.put_bytes(kMagic, sizeof kMagic);
  w.put<uint32_t>(kVersion);
  w.put<uint32_t>(static_cast<uint32_t>(3 + ckpt.other_text.size() + ckpt.tensors.size()));
  w.put_text("config", ckpt.config_yaml);
  w.put_text("meta", ckpt.meta);
  w.put_text("metrics", ckpt.metrics_csv);
  for (const auto& [name, text] : ckpt.other_text) w.put_text(name, text);
  for (const auto& [name, t] : ckpt.tensors) w.put_tensor(name, t);
  w.put<uint32_t>(crc32_of(w.bytes, w.bytes.size()));

  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw std::runtime_error("checkpoint " + path + ": cannot create " + tmp + ": " + std::strerror(errno));
  const bool ok = std::fwrite(w.bytes.data(), 1, w.bytes.size(), f) == w.bytes.size() &&
                  std::fflush(f) == 0 && fsync(fileno(f)) == 0;
  const bool closed = std::fclose(f) == 0;
  if (!ok || !closed) {
    std::remove(tmp.c_str());
    throw std::runtime_error("checkpoint " + path + ": writing " + tmp + " failed: " + std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw std::runtime_error("checkpoint " + path + ": cannot rename " + tmp + ": " + std::strerror(errno));
  }
}

Checkpoint load_checkpoint(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("checkpoint " + path + ": cannot open file");
  std::ostringstream buf;
  buf << in.rdbuf();
  const std::string bytes = buf.str();

  Reader r{path, bytes, 0, bytes.size() >= 4 ? bytes.size() - 4 : 0, "header"};
  if (bytes.size() < sizeof kMagic || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0)
    throw std::runtime_error("checkpoint " + path +
                             ": not a bitnetmcu checkpoint (the file does not start with BNMCUCK1)");
  r.pos = sizeof kMagic;
  const uint32_t version = r.get<uint32_t>();
  if (version != kVersion)
    r.fail("unsupported format version " + std::to_string(version) + " (expected 1)");
  const uint32_t n_entries = r.get<uint32_t>();

  Checkpoint ck;
  for (uint32_t e = 0; e < n_entries; ++e) {
    r.context = "entry " + std::to_string(e);
    const std::string name = r.get_string(r.get<uint16_t>());
    r.context = "entry " + std::to_string(e) + " '" + name + "'";
    const uint8_t type = r.get<uint8_t>();
    if (type == kText) {
      const std::string text = r.get_string(static_cast<size_t>(r.get<uint64_t>()));
      if (name == "config") ck.config_yaml = text;
      else if (name == "meta") ck.meta = text;
      else if (name == "metrics") ck.metrics_csv = text;
      else ck.other_text[name] = text;
    } else if (type == kFloat32 || type == kInt64) {
      const uint8_t ndim = r.get<uint8_t>();
      std::vector<int64_t> dims(ndim);
      int64_t numel = 1;
      for (auto& d : dims) {
        d = r.get<int64_t>();
        if (d < 0 || (d > 0 && numel > (int64_t{1} << 40) / d)) r.fail("invalid dimension " + std::to_string(d));
        numel *= d;
      }
      const auto dtype = type == kFloat32 ? torch::kFloat32 : torch::kInt64;
      const size_t nbytes = static_cast<size_t>(numel) * (type == kFloat32 ? 4 : 8);
      r.need(nbytes);
      torch::Tensor t = torch::empty(dims, torch::TensorOptions().dtype(dtype));
      std::memcpy(t.data_ptr(), bytes.data() + r.pos, nbytes);
      r.pos += nbytes;
      ck.tensors[name] = t;
    } else {
      r.fail("unknown entry type " + std::to_string(type));
    }
  }
  if (bytes.size() < 4 || r.pos != r.end) {
    r.context = "the CRC";
    r.fail(bytes.size() < 4 || r.pos > r.end ? "file is truncated" : "unexpected bytes after the last entry");
  }
  uint32_t stored;
  std::memcpy(&stored, bytes.data() + r.end, 4);
  if (stored != crc32_of(bytes, r.end))
    throw std::runtime_error("checkpoint " + path + ": CRC32 mismatch (file is corrupt or was modified)");
  return ck;
}

}  // namespace bitnetmcu::train
