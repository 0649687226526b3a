#include "checkpoint.hpp"

#include "checkpoint_container.hpp"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <unistd.h>

namespace bitnetmcu::train {
namespace {


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
    put<uint8_t>(kCheckpointText);
    put<uint64_t>(text.size());
    bytes += text;
  }
  void put_tensor(const std::string& name, const torch::Tensor& t) {
    const torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
    uint8_t type;
    if (c.scalar_type() == torch::kFloat32) type = kCheckpointFloat32;
    else if (c.scalar_type() == torch::kInt64) type = kCheckpointInt64;
    else throw std::runtime_error("checkpoint entry " + name + ": only float32 and int64 tensors are stored");
    put_name(name);
    put<uint8_t>(type);
    put<uint8_t>(static_cast<uint8_t>(c.dim()));
    for (int64_t d : c.sizes()) put<int64_t>(d);
    put_bytes(c.data_ptr(), c.numel() * c.element_size());
  }
};

static_assert(sizeof(float) == 4, "float32 expected");
bool host_is_little_endian() {
  const uint16_t one = 1;
  return *reinterpret_cast<const uint8_t*>(&one) == 1;
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
  w.put_bytes(kCheckpointMagic, sizeof kCheckpointMagic);
  w.put<uint32_t>(kCheckpointVersion);
  w.put<uint32_t>(static_cast<uint32_t>(3 + ckpt.other_text.size() + ckpt.tensors.size()));
  w.put_text("config", ckpt.config_yaml);
  w.put_text("meta", ckpt.meta);
  w.put_text("metrics", ckpt.metrics_csv);
  for (const auto& [name, text] : ckpt.other_text) w.put_text(name, text);
  for (const auto& [name, t] : ckpt.tensors) w.put_tensor(name, t);
  w.put<uint32_t>(checkpoint_crc32(w.bytes, w.bytes.size()));

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

  Checkpoint ck;
  for (const CheckpointEntry& e : parse_checkpoint_container(path, bytes)) {
    if (e.type == kCheckpointText) {
      std::string text = bytes.substr(e.offset, e.size);
      if (e.name == "config") ck.config_yaml = std::move(text);
      else if (e.name == "meta") ck.meta = std::move(text);
      else if (e.name == "metrics") ck.metrics_csv = std::move(text);
      else ck.other_text[e.name] = std::move(text);
    } else {
      const auto dtype = e.type == kCheckpointFloat32 ? torch::kFloat32 : torch::kInt64;
      torch::Tensor t = torch::empty(e.dims, torch::TensorOptions().dtype(dtype));
      if (e.size) std::memcpy(t.data_ptr(), bytes.data() + e.offset, e.size);  // empty: data_ptr may be null
      ck.tensors[e.name] = t;
    }
  }
  return ck;
}

}  // namespace bitnetmcu::train
