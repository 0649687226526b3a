// Checkpoint container of docs/checkpoint-format.md: a self-describing binary file (not a
// pickle) that the C++ trainer, the exporter and the Python scripts all read and write.
#pragma once
#include <torch/types.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace bitnetmcu::train {

// The "meta" entry of a checkpoint (docs/checkpoint-format.md): one "key: value" line per
// field, in this order; `interrupted` only when true. python/bitnetmcu_torch/checkpoint.py
// (CheckpointMeta) is its twin; tests/python/test_checkpoint_meta.py writes it on each side and
// reads it on the other.
struct CheckpointMeta {
  std::string creator;        // the program that wrote the file, e.g. "bitnetmcu-train (C++, LibTorch 1.13.0)"
  int epochs_done = 0;        // completed epochs; --resume continues after them
  bool complete = false;      // epochs_done reached num_epochs
  double train_seconds = 0;   // training + evaluation time of those epochs
  double test_accuracy = 0;   // of the last completed epoch (0..1)
  double test_loss = 0;       // of the last completed epoch
  bool interrupted = false;   // a signal stopped the run (the checkpoint is the last epoch boundary)
  // Lines with other keys, kept in order so that files round-trip unchanged.
  std::vector<std::pair<std::string, std::string>> other;
};

// The meta text: "creator: ...\nepochs_done: 3\n..." (numbers in their shortest exact form).
std::string meta_to_text(const CheckpointMeta& meta);
// Parses meta text; absent keys keep their defaults. Throws std::runtime_error naming `origin`,
// the line and the key for a line without ':' or a value of the wrong type.
CheckpointMeta meta_from_text(const std::string& text, const std::string& origin);

struct Checkpoint {
  std::string config_yaml;  // entry "config": the full resolved configuration
  CheckpointMeta meta;      // entry "meta"
  std::string metrics_csv;  // entry "metrics": one CSV row per completed epoch
  // "model/<layer>.weight", "clip/<layer>", "optim/..."; float32 or int64, any shape.
  std::map<std::string, torch::Tensor> tensors;
  // Text entries other than config/meta/metrics, kept so that files round-trip unchanged.
  std::map<std::string, std::string> other_text;
};

// Throws std::runtime_error naming the file and what is wrong (missing, foreign, truncated,
// CRC mismatch, unsupported version or entry type).
Checkpoint load_checkpoint(const std::string& path);
// Writes to a temporary file next to `path`, then renames it over `path`.
void save_checkpoint_atomic(const std::string& path, const Checkpoint& ckpt);

}  // namespace bitnetmcu::train
