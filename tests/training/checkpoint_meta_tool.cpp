// Test helper for tests/python/test_checkpoint_twin.py: the C++ side of the checkpoint meta
// twin (CheckpointMeta, training/checkpoint.hpp).
//   checkpoint_meta_tool write PATH      writes a checkpoint whose meta sets every field to a
//                                        non-default value, prints that meta as JSON
//   checkpoint_meta_tool read PATH...    prints each checkpoint's meta as one JSON line
// JSON: every field by name, "other" as [[key, value], ...], and "text" = meta_to_text.
#include "training/checkpoint.hpp"

#include <cstdio>
#include <iostream>
#include <string>

using namespace bitnetmcu::train;

namespace {
std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') out += std::string("\\") + c;
    else if (u < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", u);
      out += buf;
    } else out += c;
  }
  return out + "\"";
}
std::string json_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}
std::string meta_json(const CheckpointMeta& m) {
  std::string other = "[";
  for (size_t i = 0; i < m.other.size(); ++i)
    other += (i ? ", [" : "[") + json_string(m.other[i].first) + ", " + json_string(m.other[i].second) + "]";
  other += "]";
  return "{\"creator\": " + json_string(m.creator) + ", \"epochs_done\": " + std::to_string(m.epochs_done) +
         ", \"complete\": " + (m.complete ? "true" : "false") + ", \"train_seconds\": " + json_number(m.train_seconds) +
         ", \"test_accuracy\": " + json_number(m.test_accuracy) + ", \"test_loss\": " + json_number(m.test_loss) +
         ", \"interrupted\": " + (m.interrupted ? "true" : "false") + ", \"other\": " + other +
         ", \"text\": " + json_string(meta_to_text(m)) + "}";
}
}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc >= 3 ? argv[1] : "";
  try {
    if (mode == "write" && argc == 3) {
      Checkpoint ck;
      ck.config_yaml = "model: \"FCMNIST\"\n";
      ck.meta.creator = "checkpoint_meta_tool (C++) \xc3\xa4";  // UTF-8 passes through
      ck.meta.epochs_done = 17;
      ck.meta.complete = true;
      ck.meta.train_seconds = 1234.5678;
      ck.meta.test_accuracy = 0.1;  // not exact in binary
      ck.meta.test_loss = 1.0 / 3.0;
      ck.meta.interrupted = true;
      ck.meta.other = {{"seed_note", "from C++"}, {"b", "x: y"}};
      save_checkpoint_atomic(argv[2], ck);
      std::cout << meta_json(ck.meta) << "\n";
      return 0;
    }
    if (mode == "read") {
      for (int i = 2; i < argc; ++i) std::cout << meta_json(load_checkpoint(argv[i]).meta) << "\n";
      return 0;
    }
  } catch (const std::exception& e) {
    std::cerr << "checkpoint_meta_tool: " << e.what() << "\n";
    return 1;
  }
  std::cerr << "usage: checkpoint_meta_tool write PATH | read PATH...\n";
  return 2;
}
