// Checkpoint container of docs/checkpoint-format.md: a self-describing binary file (not a
// pickle) that the C++ trainer, the exporter and the Python scripts all read and write.
#pragma once
#include <torch/types.h>

#include <map>
#include <string>

namespace bitnetmcu::train {

struct Checkpoint {
  std::string config_yaml;  // entry "config": the full resolved configuration
  std::string meta;         // entry "meta": "key: value" lines
  std::string metrics_csv;  // entry "metrics": one CSV row per completed epoch
  // "model/<layer>.weight", "clip/<layer>", "optim/..."; float32 or int64, any shape.
  std::map<std::string, torch::Tensor> tensors;
  // Text entries other than config/meta/metrics, kept so that files round-trip unchanged.
  std::map<std::string, std::string> other_text;

  // The value of a "key: value" line of meta; `fallback` when absent.
  std::string meta_value(const std::string& key, const std::string& fallback = "") const;
  void set_meta_value(const std::string& key, const std::string& value);
};

// Throws std::runtime_error naming the file and what is wrong (missing, foreign, truncated,
// CRC mismatch, unsupported version or entry type).
Checkpoint load_checkpoint(const std::string& path);
// Writes to a temporary file next to `path`, then renames it over `path`.
void save_checkpoint_atomic(const std::string& path, const Checkpoint& ckpt);

}  // namespace bitnetmcu::train
