// The key table and everything derived from it: YAML parsing with file:line errors, --set
// overrides, --help text and the YAML dump stored in checkpoints.
#include "config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

namespace bitnetmcu::train {
namespace {

enum class Kind { Int, Real, Bool, Choice, Text };

struct Key {
  const char* name;
  Kind kind;
  const char* doc;
  std::vector<std::string> choices = {};  // Kind::Choice
  double lo = 0, hi = 0;                  // Kind::Int / Kind::Real, inclusive
  int Config::*i = nullptr;
  double Config::*d = nullptr;
  bool Config::*b = nullptr;
  std::string Config::*s = nullptr;
};

std::vector<std::string> quant_choices(bool with_auto) {
  std::vector<std::string> v;
  for (int i = 0; i < kNumSchemes; ++i) v.push_back(scheme_name(static_cast<SchemeId>(i)));
  v.push_back("None");
  if (with_auto) v.push_back("auto");
  return v;
}

Key int_key(const char* n, int Config::*m, double lo, double hi, const char* doc) {
  Key k{n, Kind::Int, doc};
  k.i = m, k.lo = lo, k.hi = hi;
  return k;
}
Key real_key(const char* n, double Config::*m, double lo, double hi, const char* doc) {
  Key k{n, Kind::Real, doc};
  k.d = m, k.lo = lo, k.hi = hi;
  return k;
}
Key bool_key(const char* n, bool Config::*m, const char* doc) {
  Key k{n, Kind::Bool, doc};
  k.b = m;
  return k;
}
Key choice_key(const char* n, std::string Config::*m, std::vector<std::string> c, const char* doc) {
  Key k{n, Kind::Choice, doc};
  k.s = m, k.choices = std::move(c);
  return k;
}
Key text_key(const char* n, std::string Config::*m, const char* doc) {
  Key k{n, Kind::Text, doc};
  k.s = m;
  return k;
}

const std::vector<Key>& keys() {
  static const std::vector<Key> table = {
      choice_key("model", &Config::model, {"FCMNIST", "CNNMNIST"},
                 "network: fully connected or the depthwise CNN (SPEC §3)"),
      choice_key("dataset", &Config::dataset, {"MNIST", "FashionMNIST", "idx", "npy", "npz", "csv", "images"},
                 "training data: MNIST/FashionMNIST from data_dir, or your own files (data_train ...): "
                 "idx = IDX pair (uint8), npy = .npy samples + .npy labels, npz = one .npz with arrays x and y, "
                 "csv = one sample per row with a label column, images = a folder with one sub-folder of .png/.pgm per class"),
      text_key("data_dir", &Config::data_dir,
               "folder holding mnist/ (and fashion-mnist/); FashionMNIST also falls back to "
               "/usr/share/datasets/fashion-mnist"),
      text_key("data_train", &Config::data_train,
               "idx/npy/npz/csv: training samples file (.gz allowed for idx and csv), images: the folder; samples of shape (N, H, W) "
               "are images (resized to input_side), (N, F) are feature vectors"),
      text_key("data_train_labels", &Config::data_train_labels,
               "idx/npy: training labels file (integers 0..classes-1)"),
      text_key("data_test", &Config::data_test,
               "test samples file (images: folder); empty = draw test_fraction of data_train (seeded by seed, stratified per class)"),
      text_key("data_test_labels", &Config::data_test_labels, "idx/npy: test labels file"),
      real_key("test_fraction", &Config::test_fraction, 0.01, 0.9,
               "share of each class held out for testing when data_test is empty"),
      text_key("label_column", &Config::label_column,
               "csv: column of the integer label, by header name or 0-based index (-1 = last column)"),
      bool_key("csv_header", &Config::csv_header, "csv: the first row (after csv_skip_rows) names the columns"),
      int_key("csv_skip_rows", &Config::csv_skip_rows, 0, 1000000, "csv: rows skipped at the top of the file"),
      text_key("class_names", &Config::class_names,
               "comma-separated class names (their count = classes); empty = from the data (labels 0..max, images: the sorted sub-folder names)"),
      int_key("input_side", &Config::input_side, 4, 64,
              "image data: side of the network input after the antialiased resize (CNNMNIST: 8..64)"),
      choice_key("input_quantization", &Config::input_quantization, {"auto", "per_image", "global", "per_feature"},
                 "int8 network input: per_image = SPEC §2 (127 / max|x| per sample), global / per_feature = "
                 "q = round((x - offset) * scale) with offset, scale from the training set's range "
                 "(bitnetmcu/preprocess.hpp); auto = per_image for images, per_feature for vectors"),
      int_key("input_features", &Config::input_features, 0, 65536,
              "network inputs; 0 = from the data (the trainer records the resolved value)"),
      int_key("classes", &Config::classes, 0, 256, "classes; 0 = from the data (the trainer records the resolved value)"),
      int_key("network_width1", &Config::network_width1, 1, 4096, "width of fc1"),
      int_key("network_width2", &Config::network_width2, 1, 4096, "width of fc2"),
      int_key("network_width3", &Config::network_width3, 0, 4096, "width of fc3; 0 = no fc3"),
      int_key("cnn_width", &Config::cnn_width, 1, 1024, "CNNMNIST channels C"),
      choice_key("QuantType", &Config::QuantType, quant_choices(false),
                 "weight scheme of every layer without an override (None = float)"),
      choice_key("QuantType_conv1", &Config::QuantType_conv1, quant_choices(true),
                 "override for conv1 (auto = 8bit)"),
      choice_key("QuantType_conv2", &Config::QuantType_conv2, quant_choices(true),
                 "override for conv2 (auto = 8bit)"),
      choice_key("QuantType_conv3", &Config::QuantType_conv3, quant_choices(true),
                 "override for conv3 (auto = 8bit)"),
      choice_key("QuantType_fc1", &Config::QuantType_fc1, quant_choices(true),
                 "override for fc1 (auto = QuantType; 2bitsym for CNNMNIST)"),
      choice_key("QuantType_fc2", &Config::QuantType_fc2, quant_choices(true),
                 "override for fc2 (auto = QuantType)"),
      choice_key("QuantType_fc3", &Config::QuantType_fc3, quant_choices(true),
                 "override for fc3 (auto = QuantType)"),
      choice_key("QuantType_fcl", &Config::QuantType_fcl, quant_choices(true),
                 "override for the classifier fcl (auto = QuantType)"),
      choice_key("NormType", &Config::NormType, {"RMS", "Lin", "BatchNorm", "LayerNorm", "None"},
                 "normalization in front of each BitLinear"),
      choice_key("WScale", &Config::WScale, {"PerTensor", "PerOutput"},
                 "clipping scalar per tensor or per output row"),
      choice_key("maxw_algo", &Config::maxw_algo, {"octav", "prop"},
                 "how the clipping scalar s is chosen (SPEC §4)"),
      int_key("maxw_update_until_epoch", &Config::maxw_update_until_epoch, 0, 1e6,
              "s is updated after each of the first N epochs, then frozen"),
      real_key("maxw_quantscale", &Config::maxw_quantscale, 1e-6, 1e6,
               "prop: s = mean|w| / maxw_quantscale (PerTensor) or max_row|w| / maxw_quantscale"),
      int_key("num_epochs", &Config::num_epochs, 1, 100000, "epochs to train"),
      int_key("batch_size", &Config::batch_size, 1, 1 << 20, "samples per optimizer step"),
      choice_key("optimizer", &Config::optimizer, {"Adam", "Muon"},
                 "Adam for every weight, or Muon for the hidden layers' weights with Adam for the classifier"),
      real_key("learning_rate", &Config::learning_rate, 1e-12, 10, "Adam learning rate"),
      real_key("muon_learning_rate", &Config::muon_learning_rate, 1e-12, 10,
               "Muon learning rate (optimizer: Muon), scheduled like learning_rate"),
      choice_key("scheduler", &Config::scheduler, {"StepLR", "Cosine", "CosineWarmRestarts"},
                 "learning-rate schedule, stepped once per epoch"),
      real_key("lr_decay", &Config::lr_decay, 1e-9, 1, "StepLR: factor every step_size epochs"),
      int_key("step_size", &Config::step_size, 1, 100000, "StepLR: epochs between decays"),
      int_key("T_0", &Config::T_0, 1, 100000, "CosineWarmRestarts: epochs of the first cycle"),
      int_key("T_mult", &Config::T_mult, 1, 1000, "CosineWarmRestarts: cycle length factor"),
      int_key("halve_lr_epoch", &Config::halve_lr_epoch, -1, 100000,
              "from this epoch on the scheduled rate is halved; -1 = never"),
      real_key("ema_decay", &Config::ema_decay, 0, 0.99999,
               "> 0: evaluate, save and export an exponential moving average of the weights over the optimizer "
               "steps, avg = d avg + (1 - d) w, d = min(ema_decay, t / (t + 9)) at step t; 0 = off"),
      real_key("activation_sparsity", &Config::activation_sparsity, 0, 100,
               "> 0: weight of a term that makes the ReLU outputs feeding the dense layers sparse (the "
               "Hoyer measure (sum h)^2 / (n sum h^2), mean over samples and layers): the engine skips zero "
               "inputs, so fewer nonzero activations mean fewer instructions per inference; 0 = off"),
      bool_key("augmentation", &Config::augmentation,
               "add one augmented copy of the training set to every epoch"),
      real_key("rotation1", &Config::rotation1, 0, 180, "first random rotation, +- degrees"),
      real_key("rotation2", &Config::rotation2, 0, 180,
               "rotation of the random affine map (+-10% shift, scale 0.9-1.1), +- degrees"),
      real_key("elastictransformprobability", &Config::elastictransformprobability, 0, 1,
               "probability of an elastic deformation (alpha 40, sigma 4)"),
      real_key("augmentation_hflip", &Config::augmentation_hflip, 0, 1,
               "probability of a left-right mirror of an augmented image (clothing, objects; never digits)"),
      choice_key("augmentation_interpolation", &Config::augmentation_interpolation, {"nearest", "bilinear"},
                 "sampling of the rotated/affine 28x28 image (nearest = torchvision's default, as the reference)"),
      text_key("distill_teacher", &Config::distill_teacher,
               "checkpoint (.pt) of a trained model for the same data (e.g. a CNN) whose outputs on the training "
               "images, softened by distill_temperature, the student learns besides the labels (knowledge "
               "distillation); empty = off"),
      real_key("distill_weight", &Config::distill_weight, 0, 1,
               "distill_teacher: share of the distillation term, loss = (1 - w) CE + w T^2 KL(teacher || student)"),
      real_key("distill_temperature", &Config::distill_temperature, 0.05, 100,
               "distill_teacher: softmax temperature T of teacher and student logits"),
      text_key("runtag", &Config::runtag, "prefix of the run name (checkpoint file name)"),
      text_key("output_dir", &Config::output_dir, "where checkpoints and metrics CSVs go"),
      int_key("seed", &Config::seed, 0, 2147483647, "random seed (initialization, shuffling, augmentation)"),
      int_key("num_threads", &Config::num_threads, 0, 1024, "CPU threads of the training loop; 0 = automatic (1 for FCMNIST; for CNNMNIST one per idle core, checked again before every epoch)"),
      int_key("train_subset", &Config::train_subset, 0, 1e9,
              "use only the first N training images; 0 = all"),
      int_key("test_subset", &Config::test_subset, 0, 1e9,
              "evaluate on the first N test images; 0 = all"),
  };
  return table;
}

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

const Key* find_key(const std::string& name) {
  for (const Key& k : keys())
    if (name == k.name) return &k;
  return nullptr;
}

[[noreturn]] void unknown_key(const std::string& where, const std::string& name) {
  throw ConfigError(where + ": unknown key '" + name + "'; valid keys: " +
                    join(config_key_names(), ", "));
}

std::string expected(const Key& k) {
  std::ostringstream os;
  switch (k.kind) {
    case Kind::Int: os << "an integer in [" << static_cast<long long>(k.lo) << ", " << static_cast<long long>(k.hi) << "]"; break;
    case Kind::Real: os << "a number in [" << k.lo << ", " << k.hi << "]"; break;
    case Kind::Bool: os << "true or false"; break;
    case Kind::Choice: os << "one of " << join(k.choices, ", "); break;
    case Kind::Text: os << "a string"; break;
  }
  return os.str();
}

// Assigns the scalar text to the key's field; `where` is "file:line" or "--set k=v".
void assign(Config& cfg, const Key& k, const std::string& text, const std::string& where) {
  auto fail = [&]() -> void {
    throw ConfigError(where + ": key '" + k.name + "': expected " + expected(k) + ", got '" +
                      text + "'");
  };
  const char* begin = text.c_str();
  char* end = nullptr;
  switch (k.kind) {
    case Kind::Int: {
      const long long v = std::strtoll(begin, &end, 10);
      if (text.empty() || *end != 0 || v < k.lo || v > k.hi) fail();
      cfg.*k.i = static_cast<int>(v);
      break;
    }
    case Kind::Real: {
      const double v = std::strtod(begin, &end);
      if (text.empty() || *end != 0 || !std::isfinite(v) || v < k.lo || v > k.hi) fail();
      cfg.*k.d = v;
      break;
    }
    case Kind::Bool: {
      std::string t = text;
      std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
      if (t == "true" || t == "yes" || t == "on" || t == "1") cfg.*k.b = true;
      else if (t == "false" || t == "no" || t == "off" || t == "0") cfg.*k.b = false;
      else fail();
      break;
    }
    case Kind::Choice:
      if (std::find(k.choices.begin(), k.choices.end(), text) == k.choices.end()) fail();
      cfg.*k.s = text;
      break;
    case Kind::Text: cfg.*k.s = text; break;
  }
}

// A YAML double-quoted scalar that parses back to exactly `s`: quotes, backslashes and control
// characters escaped (config_to_yaml is stored in every checkpoint and read back on resume).
std::string yaml_quoted(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7F) {
      const char* hex = "0123456789ABCDEF";
      out += "\\x";
      out += hex[u >> 4];
      out += hex[u & 15];
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string value_text(const Config& cfg, const Key& k) {
  std::ostringstream os;
  switch (k.kind) {
    case Kind::Int: os << cfg.*k.i; break;
    case Kind::Real: os.precision(17), os << cfg.*k.d; break;
    case Kind::Bool: os << (cfg.*k.b ? "true" : "false"); break;
    case Kind::Choice:
    case Kind::Text: os << yaml_quoted(cfg.*k.s); break;
  }
  return os.str();
}

// Checks that involve more than one key. `where` maps a key to where it was last set.
void validate(const Config& cfg, const std::map<std::string, std::string>& where,
              const std::string& origin) {
  auto at = [&](const std::string& key) {
    auto it = where.find(key);
    return it == where.end() ? origin + " (default of " + key + ")" : it->second;
  };
  if (!cfg.is_cnn()) {
    for (const char* conv : {"QuantType_conv1", "QuantType_conv2", "QuantType_conv3"})
      if (cfg.*find_key(conv)->s != "auto")
        throw ConfigError(at(conv) + ": key '" + conv + "': model FCMNIST has no conv layers; "
                          "expected auto");
  }
  if (cfg.network_width3 == 0 && cfg.QuantType_fc3 != "auto")
    throw ConfigError(at("QuantType_fc3") + ": key 'QuantType_fc3': network_width3 is 0 (no fc3); "
                      "expected auto");
  if (cfg.runtag.find('/') != std::string::npos)
    throw ConfigError(at("runtag") + ": key 'runtag': expected a file-name prefix without '/'");
}

std::string line_of(const std::string& origin, const YAML::Mark& mark) {
  return origin + ":" + std::to_string(mark.line + 1);
}

Config parse_yaml(const std::string& text, const std::string& origin) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError(line_of(origin, e.mark) + ": invalid YAML: " + e.msg);
  }
  Config cfg;
  std::map<std::string, std::string> where;
  if (root.IsNull()) return cfg;  // an empty file means "all defaults"
  if (!root.IsMap())
    throw ConfigError(line_of(origin, root.Mark()) + ": expected a mapping of key: value lines");
  for (const auto& kv : root) {
    const std::string name = kv.first.Scalar();
    const std::string at = line_of(origin, kv.first.Mark());
    const Key* k = find_key(name);
    if (!k) unknown_key(at, name);
    if (!kv.second.IsScalar())
      throw ConfigError(at + ": key '" + name + "': expected " + expected(*k) + ", got " +
                        (kv.second.IsNull() ? "nothing" : "a list or mapping"));
    if (where.count(name)) throw ConfigError(at + ": key '" + name + "' given twice");
    assign(cfg, *k, kv.second.Scalar(), at);
    where[name] = at;
  }
  validate(cfg, where, origin);
  return cfg;
}

}  // namespace

std::vector<std::string> Config::layer_names() const {
  std::vector<std::string> names;
  if (is_cnn()) names = {"conv1", "conv2", "conv3"};
  names.push_back("fc1");
  names.push_back("fc2");
  if (network_width3 > 0) names.push_back("fc3");
  names.push_back("fcl");
  return names;
}

std::optional<SchemeId> Config::layer_scheme(const std::string& layer) const {
  const Key* k = find_key("QuantType_" + layer);
  if (!k) throw std::invalid_argument("no layer named '" + layer + "'");
  std::string name = this->*k->s;
  if (name == "auto") {
    if (QuantType == "None") name = "None";
    else if (layer.rfind("conv", 0) == 0) name = "8bit";
    else if (layer == "fc1" && is_cnn()) name = "2bitsym";
    else name = QuantType;
  }
  if (name == "None") return std::nullopt;
  SchemeId id{};
  if (!scheme_from_name(name.c_str(), &id))
    throw std::invalid_argument("unknown weight scheme '" + name + "'");
  return id;
}

std::string Config::run_name() const {
  std::string n = runtag + model + "_" + QuantType + "_" + NormType + "_w" +
                  std::to_string(network_width1) + "_" + std::to_string(network_width2) + "_" +
                  std::to_string(network_width3);
  if (is_cnn()) n += "_cnn" + std::to_string(cnn_width);
  if (optimizer != "Adam") n += "_" + optimizer;
  if (!distill_teacher.empty()) n += "_kd";
  if (ema_decay > 0) n += "_ema";
  if (activation_sparsity > 0) n += "_sparse";
  return n + "_e" + std::to_string(num_epochs);
}

Config config_from_yaml_text(const std::string& text, const std::string& origin) {
  return parse_yaml(text, origin);
}

Config load_config(const std::string& yaml_path, const std::vector<std::string>& set_overrides) {
  // std::ifstream opens a directory and reads nothing from it, which would mean "all defaults".
  std::error_code ec;
  if (std::filesystem::exists(yaml_path, ec) && !std::filesystem::is_regular_file(yaml_path, ec))
    throw ConfigError(yaml_path + ": not a regular file (expected a YAML configuration file)");
  std::ifstream in(yaml_path, std::ios::binary);
  if (!in) throw ConfigError(yaml_path + ": cannot open configuration file");
  std::ostringstream text;
  text << in.rdbuf();
  Config cfg = parse_yaml(text.str(), yaml_path);
  for (const std::string& s : set_overrides) apply_override(cfg, s);
  return cfg;
}

void apply_override(Config& cfg, const std::string& key_equals_value) {
  const std::string where = "--set " + key_equals_value;
  const size_t eq = key_equals_value.find('=');
  if (eq == std::string::npos || eq == 0)
    throw ConfigError(where + ": expected key=value");
  const std::string name = key_equals_value.substr(0, eq);
  const Key* k = find_key(name);
  if (!k) unknown_key(where, name);
  std::string value = key_equals_value.substr(eq + 1);
  try {  // YAML scalar rules, so that --set runtag="x" behaves like the file
    const YAML::Node n = YAML::Load(value);
    if (n.IsScalar()) value = n.Scalar();
  } catch (const YAML::Exception&) {
  }
  assign(cfg, *k, value, where);
  validate(cfg, {{name, where}}, where);
}

std::string config_to_yaml(const Config& cfg) {
  std::string out;
  for (const Key& k : keys()) out += std::string(k.name) + ": " + value_text(cfg, k) + "\n";
  return out;
}

std::string config_keys_help() {
  const Config defaults;
  std::ostringstream os;
  for (const Key& k : keys())
    os << "  " << k.name << " (default " << value_text(defaults, k) << ")\n      " << k.doc
       << "\n      expects " << expected(k) << "\n";
  return os.str();
}

namespace {
// Shortest decimal text that reads back as exactly `v` (as Python's repr does).
std::string shortest_number(double v) {
  for (int precision = 1; precision <= 17; ++precision) {
    std::ostringstream os;
    os.precision(precision);
    os << v;
    if (std::strtod(os.str().c_str(), nullptr) == v) return os.str();
  }
  std::ostringstream os;
  os.precision(17);
  os << v;
  return os.str();
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20) {
      const char* hex = "0123456789abcdef";
      out += "\\u00";
      out += hex[u >> 4];
      out += hex[u & 15];
    } else {
      out += c;  // UTF-8 passes through (JSON text is UTF-8)
    }
  }
  return out + "\"";
}

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::Int: return "int";
    case Kind::Real: return "real";
    case Kind::Bool: return "bool";
    case Kind::Choice: return "choice";
    case Kind::Text: return "text";
  }
  return "?";
}
}  // namespace

std::string config_schema_json() {
  const Config defaults;
  std::ostringstream os;
  os << "{\n  \"generated_by\": \"bitnetmcu-train --dump-config-schema (from the key table of "
        "training/config.cpp)\",\n  \"keys\": [\n";
  const auto& table = keys();
  for (size_t i = 0; i < table.size(); ++i) {
    const Key& k = table[i];
    os << "    {\"name\": " << json_string(k.name) << ", \"type\": \"" << kind_name(k.kind) << "\", \"default\": ";
    switch (k.kind) {
      case Kind::Int: os << defaults.*k.i; break;
      case Kind::Real: os << shortest_number(defaults.*k.d); break;
      case Kind::Bool: os << (defaults.*k.b ? "true" : "false"); break;
      case Kind::Choice:
      case Kind::Text: os << json_string(defaults.*k.s); break;
    }
    if (k.kind == Kind::Int)
      os << ", \"min\": " << static_cast<long long>(k.lo) << ", \"max\": " << static_cast<long long>(k.hi);
    if (k.kind == Kind::Real) os << ", \"min\": " << shortest_number(k.lo) << ", \"max\": " << shortest_number(k.hi);
    if (k.kind == Kind::Choice) {
      os << ", \"choices\": [";
      for (size_t c = 0; c < k.choices.size(); ++c) os << (c ? ", " : "") << json_string(k.choices[c]);
      os << "]";
    }
    os << ",\n     \"doc\": " << json_string(k.doc) << "}" << (i + 1 < table.size() ? "," : "") << "\n";
  }
  os << "  ]\n}\n";
  return os.str();
}

std::vector<std::string> config_key_names() {
  std::vector<std::string> names;
  for (const Key& k : keys()) names.push_back(k.name);
  return names;
}

}  // namespace bitnetmcu::train
