// bitnetmcu-train: quantization-aware training of FCMNIST/CNNMNIST from trainingparameters.yaml.
// Argument parsing only; the work is in training/ (bitnetmcu::train).
#include "training/trainer.hpp"

#include <cstring>
#include <iomanip>
#include <iostream>

namespace {

constexpr int kExitError = 1, kExitUsage = 2, kExitInterrupted = 130;

const char* const kUsage = R"(usage: bitnetmcu-train [CONFIG.yaml] [--set KEY=VALUE]... [--no-progress]
       bitnetmcu-train --resume CHECKPOINT.pt [--set KEY=VALUE]...
       bitnetmcu-train --eval CHECKPOINT.pt [--set KEY=VALUE]...
       bitnetmcu-train [CONFIG.yaml] [--set KEY=VALUE]... --check
       bitnetmcu-train --dump-config-schema

Trains a quantization-aware model from CONFIG.yaml (default: trainingparameters.yaml) and
writes <output_dir>/<run name>.pt after every epoch (plus a metrics .csv next to it).
  --set KEY=VALUE   override a configuration key (repeatable; applied after the file)
  --resume CKPT     continue an interrupted or finished run (e.g. --set num_epochs=80)
  --eval CKPT       print the checkpoint's float (QAT) test loss and accuracy
  --no-progress     no live progress bar (it is shown only on a terminal anyway)
  --check           validate CONFIG.yaml and the overrides, print the resulting configuration
                    (YAML, every key), its run name and each layer's weight scheme, train
                    nothing (bitnetmcu-sweep uses it)
  --dump-config-schema  print every configuration key as JSON (type, default, range or
                    choices, doc) and exit; python/bitnetmcu_torch/config_schema.json is this
                    output, which the Python trainer reads (a ctest fails when they differ)
Ctrl-C / SIGTERM saves a resumable checkpoint and exits with status 130.
Exit status: 0 success, 1 error, 2 usage error, 130 interrupted.

Configuration keys:
)";

struct Arguments {
  std::string config_path = "trainingparameters.yaml";
  std::string resume_path, eval_path;
  std::vector<std::string> overrides;
  bool progress = true;
  bool check = false;
};

// Returns false (after printing why) on a usage error.
bool parse_arguments(int argc, char** argv, Arguments& a) {
  bool have_config = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const char* flag) -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(std::string(flag) + " needs a value");
      return argv[++i];
    };
    if (arg == "--set") a.overrides.push_back(value("--set"));
    else if (arg.rfind("--set=", 0) == 0) a.overrides.push_back(arg.substr(6));
    else if (arg == "--resume") a.resume_path = value("--resume");
    else if (arg == "--eval") a.eval_path = value("--eval");
    else if (arg == "--no-progress") a.progress = false;
    else if (arg == "--check") a.check = true;
    else if (arg.rfind("-", 0) == 0) throw std::invalid_argument("unknown option " + arg);
    else if (have_config) throw std::invalid_argument("more than one configuration file: " + arg);
    else a.config_path = arg, have_config = true;
  }
  if (!a.resume_path.empty() && !a.eval_path.empty())
    throw std::invalid_argument("--resume and --eval exclude each other");
  if (a.check && (!a.resume_path.empty() || !a.eval_path.empty()))
    throw std::invalid_argument("--check validates a configuration file, not a checkpoint");
  return true;
}

int run(int argc, char** argv) {
  using namespace bitnetmcu::train;
  for (int i = 1; i < argc; ++i)
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      std::cout << kUsage << config_keys_help();
      return 0;
    }
  for (int i = 1; i < argc; ++i)
    if (!std::strcmp(argv[i], "--dump-config-schema")) {
      if (argc != 2) {
        std::cerr << "bitnetmcu-train: --dump-config-schema takes no other argument\n(see bitnetmcu-train --help)\n";
        return kExitUsage;
      }
      std::cout << config_schema_json();
      return 0;
    }
  Arguments args;
  try {
    parse_arguments(argc, argv, args);
  } catch (const std::invalid_argument& e) {
    std::cerr << "bitnetmcu-train: " << e.what() << "\n(see bitnetmcu-train --help)\n";
    return kExitUsage;
  }
  try {
    if (!args.eval_path.empty()) {
      const EvalResult r = evaluate_checkpoint(args.eval_path, args.overrides);
      std::cout << args.eval_path << ": test loss " << std::setprecision(4) << r.loss << ", accuracy " << std::fixed
                << std::setprecision(2) << 100 * r.accuracy << " % ("
                << r.count << " images, float QAT forward pass)\n";
      return 0;
    }
    if (args.check) {
      const Config cfg = load_config(args.config_path, args.overrides);
      std::cout << config_to_yaml(cfg) << "# run name: " << cfg.run_name() << "\n# layer schemes:";
      for (const std::string& layer : cfg.layer_names()) {
        const auto scheme = cfg.layer_scheme(layer);
        std::cout << " " << layer << "=" << (scheme ? scheme_name(*scheme) : "None");
      }
      std::cout << "\n";
      return 0;
    }
    TrainOptions options;
    options.progress_bar = args.progress;
    options.resume_path = args.resume_path;
    options.overrides = args.overrides;
    const Config cfg = args.resume_path.empty() ? load_config(args.config_path, args.overrides) : Config{};
    const TrainResult r = train(cfg, options);
    if (r.interrupted) return kExitInterrupted;
    std::cout << "done: " << r.checkpoint_path << " (" << r.epochs_done << " epochs, test accuracy " << std::fixed
              << std::setprecision(2) << 100 * r.test_accuracy << " %)\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "bitnetmcu-train: error: " << e.what() << "\n";
    return kExitError;
  }
}

}  // namespace

int main(int argc, char** argv) {
  bitnetmcu::train::choose_openmp_wait_policy(argv);  // why: trainer.hpp
  return run(argc, argv);
}
