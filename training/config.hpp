// Training configuration: trainingparameters.yaml -> validated Config (SPEC §2-§4).
// Every key is described once, in the key table of config.cpp; parsing, --set overrides,
// --help text, config_to_yaml and the JSON schema the Python twin reads all come from that table.
#pragma once
#include <bitnetmcu/schemes.hpp>

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace bitnetmcu::train {

// Thrown for every configuration problem; what() names the file (or --set), the line, the key
// and the expected value.
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Config {
  // model and data
  std::string model = "FCMNIST";  // FCMNIST | CNNMNIST
  std::string dataset = "MNIST";  // MNIST | FashionMNIST | idx | npy | npz | csv | images (data.hpp)
  std::string data_dir = "data";  // holds mnist/ (and fashion-mnist/)
  // Your own data (dataset idx/npy/npz/csv): files, split, labels, input shape, input quantization.
  std::string data_train = "", data_train_labels = "", data_test = "", data_test_labels = "";
  double test_fraction = 0.2;           // no data_test: drawn from data_train, seeded, stratified
  std::string label_column = "label";   // csv: header name or 0-based index (-1 = last column)
  bool csv_header = true;               // csv: the first row (after csv_skip_rows) names the columns
  int csv_skip_rows = 0;                // csv: rows skipped before the header / data
  std::string class_names = "";         // comma-separated; empty = from the data
  int input_side = 16;                  // image data: resized to input_side x input_side
  std::string input_quantization = "auto";  // auto | per_image | global | per_feature
  int input_features = 0;               // inputs of the network; 0 = from the data (set by the trainer)
  int classes = 0;                      // classes; 0 = from the data (set by the trainer)
  int network_width1 = 64, network_width2 = 64, network_width3 = 64;
  int cnn_width = 32;
  // quantization
  std::string QuantType = "4bitsym";  // a scheme name or "None"
  // Per-layer overrides: "auto" = the model's default for that layer (SPEC §3).
  std::string QuantType_conv1 = "auto", QuantType_conv2 = "auto", QuantType_conv3 = "auto";
  std::string QuantType_fc1 = "auto", QuantType_fc2 = "auto", QuantType_fc3 = "auto",
              QuantType_fcl = "auto";
  std::string NormType = "RMS";   // RMS | Lin | BatchNorm | LayerNorm | None
  std::string WScale = "PerTensor";  // PerTensor | PerOutput
  std::string maxw_algo = "octav";   // octav | prop
  int maxw_update_until_epoch = 60;
  double maxw_quantscale = 0.25;
  // optimization
  int num_epochs = 10;
  int batch_size = 128;
  double learning_rate = 0.001;      // Adam
  std::string optimizer = "Adam";    // Adam | Muon (hidden layers; the classifier stays on Adam)
  double muon_learning_rate = 0.01;  // Muon
  std::string scheduler = "Cosine";  // StepLR | Cosine | CosineWarmRestarts
  double lr_decay = 0.1;
  int step_size = 10;
  int T_0 = 10;
  int T_mult = 1;
  int halve_lr_epoch = -1;  // <0: never
  double ema_decay = 0;     // >0: evaluate, save and export a moving average of the weights (weight_average.hpp)
  double activation_sparsity = 0;  // >0: weight of the hidden-activation sparsity term (models.hpp)
  // augmentation
  bool augmentation = true;
  double rotation1 = 10, rotation2 = 10;
  double elastictransformprobability = 0;
  double augmentation_hflip = 0;  // probability of a left-right mirror (not for digits)
  std::string augmentation_interpolation = "nearest";  // nearest (torchvision's default) | bilinear
  // knowledge distillation (trainer.cpp): a trained teacher's softened outputs on the training images
  std::string distill_teacher = "";  // checkpoint path; empty = off
  double distill_weight = 0.5;       // loss = (1 - w) CE + w T^2 KL(teacher || student)
  double distill_temperature = 4;    // T
  // run
  std::string runtag = "";
  std::string output_dir = "modeldata";
  int seed = 1;
  int num_threads = 0;    // 0: one per core
  int train_subset = 0;   // >0: use only the first N training images (tests, quick runs)
  int test_subset = 0;    // >0: evaluate on the first N test images

  bool is_cnn() const { return model == "CNNMNIST"; }
  // MNIST and Fashion-MNIST: 10 classes and side^2 inputs; other data: the values the trainer
  // resolved from the data (resolve_data_shape, data.hpp).
  int num_classes() const { return classes > 0 ? classes : 10; }
  int num_inputs() const { return input_features > 0 ? input_features : input_side * input_side; }
  bool is_builtin_dataset() const { return dataset == "MNIST" || dataset == "FashionMNIST"; }
  // Layer names in forward order (docs/checkpoint-format.md): conv1..3 (CNN), fc1, fc2, [fc3], fcl.
  std::vector<std::string> layer_names() const;
  // The resolved weight scheme of a layer; nullopt = float (QuantType None).
  std::optional<SchemeId> layer_scheme(const std::string& layer) const;
  // <runtag><model>_<QuantType>_<NormType>_w<w1>_<w2>_<w3>[_cnn<C>]_e<epochs>
  std::string run_name() const;
};

// Reads and validates a YAML file, then applies "key=value" overrides (in order).
Config load_config(const std::string& yaml_path, const std::vector<std::string>& set_overrides);
// Parses YAML text; `origin` names it in error messages (a path, "checkpoint x.pt", ...).
Config config_from_yaml_text(const std::string& text, const std::string& origin);
// Applies one "key=value" override; errors name "--set key=value".
void apply_override(Config& cfg, const std::string& key_equals_value);
// Every key with its value, one per line, in table order; config_from_yaml_text reads it back.
std::string config_to_yaml(const Config& cfg);
// Human-readable documentation of every key (for --help).
std::string config_keys_help();
// Every key as JSON (name, type, default, min/max or choices, doc), in table order: what
// `bitnetmcu-train --dump-config-schema` prints and python/bitnetmcu_torch/config_schema.json
// holds, so that the Python trainer reads the one key table (docs: python/README.md).
std::string config_schema_json();
// The names of all keys, in table order.
std::vector<std::string> config_key_names();

}  // namespace bitnetmcu::train
