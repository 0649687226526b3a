#include "checkpoint.hpp"

#include "checkpoint_container.hpp"

#include <cstdio>
#include <cstdlib>
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

namespace {
// Shortest decimal text that reads back as exactly `v` (what Python's repr writes).
std::string number_text(double v) {
  char buf[32];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof buf, "%.*g", precision, v);
    if (std::strtod(buf, nullptr) == v) break;
  }
  return buf;
}
}  // namespace

std::string meta_to_text(const CheckpointMeta& m) {
  std::string t = "creator: " + m.creator + "\nepochs_done: " + std::to_string(m.epochs_done) +
                  "\ncomplete: " + (m.complete ? "true" : "false") + "\ntrain_seconds: " + number_text(m.train_seconds) +
                  "\ntest_accuracy: " + number_text(m.test_accuracy) + "\ntest_loss: " + number_text(m.test_loss) + "\n";
  if (m.interrupted) t += "interrupted: true\n";
  for (const auto& [key, value] : m.other) t += key + ": " + value + "\n";
  return t;
}

CheckpointMeta meta_from_text(const std::string& text, const std::string& origin) {
  CheckpointMeta m;
  std::istringstream in(text);
  std::string line;
  for (int line_no = 1; std::getline(in, line); ++line_no) {
    if (line.empty()) continue;
    const std::string where = origin + " (meta line " + std::to_string(line_no) + ")";
    const size_t colon = line.find(':');
    if (colon == std::string::npos) throw std::runtime_error(where + ": expected 'key: value', got '" + line + "'");
    // key and value without surrounding spaces (as Python's str.strip)
    auto trim = [](const std::string& t) {
      const size_t b = t.find_first_not_of(" \t\r"), e = t.find_last_not_of(" \t\r");
      return b == std::string::npos ? std::string() : t.substr(b, e - b + 1);
    };
    const std::string key = trim(line.substr(0, colon)), value = trim(line.substr(colon + 1));
    auto bad = [&](const char* expected) {
      return std::runtime_error(where + ": key '" + key + "': expected " + expected + ", got '" + value + "'");
    };
    auto number = [&]() {
      char* end = nullptr;
      const double v = std::strtod(value.c_str(), &end);
      if (value.empty() || *end != 0) throw bad("a number");
      return v;
    };
    auto boolean = [&]() {
      if (value != "true" && value != "false") throw bad("true or false");
      return value == "true";
    };
    if (key == "creator") m.creator = value;
    else if (key == "epochs_done") {
      char* end = nullptr;
      const long long v = std::strtoll(value.c_str(), &end, 10);
      if (value.empty() || *end != 0 || v < 0 || v > 1000000000) throw bad("an integer in [0, 1000000000]");
      m.epochs_done = static_cast<int>(v);
    } else if (key == "complete") m.complete = boolean();
    else if (key == "train_seconds") m.train_seconds = number();
    else if (key == "test_accuracy") m.test_accuracy = number();
    else if (key == "test_loss") m.test_loss = number();
    else if (key == "interrupted") m.interrupted = boolean();
    else m.other.emplace_back(key, value);
  }
  return m;
}

void save_checkpoint_atomic(const std::string& path, const Checkpoint& ckpt) {
  if (!host_is_little_endian()) throw std::runtime_error("checkpoint: big-endian hosts are not supported");
  Writer w;
  w.put_bytes(kCheckpointMagic, sizeof kCheckpointMagic);
  w.put<uint32_t>(kCheckpointVersion);
  w.put<uint32_t>(static_cast<uint32_t>(3 + ckpt.other_text.size() + ckpt.tensors.size()));
  w.put_text("config", ckpt.config_yaml);
  w.put_text("meta", meta_to_text(ckpt.meta));
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
      else if (e.name == "meta") ck.meta = meta_from_text(text, "checkpoint " + path);
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
