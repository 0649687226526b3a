// bitnetmcu-export: trained checkpoint -> model header, model file and verification report.
// Argument parsing only; the work is bitnetmcu::exporter::run_export (training/exporter/).
#include <cstdlib>
#include <iostream>
#include <string>

#include "training/exporter/run_export.hpp"

namespace {

constexpr const char* kUsage = R"(usage: bitnetmcu-export CHECKPOINT [options]

Quantizes and packs a trained checkpoint with the engine's traits, verifies it on the test set
(float QAT model, the integer engine, and an independent LibTorch integer emulation that must
agree with the engine on every image), and writes into the output folder:
  <name>.h            the model header (docs/model-header.md)
  <name>.bnm          the binary model file (Python module)
  <name>.report.json  per-layer statistics, accuracies, mismatches, target fit

options:
  --name NAME          model name: C++ namespace and file stem (default: the checkpoint's stem)
  --out-dir DIR        output folder (default: modeldata)
  --data-dir DIR       folder holding mnist/ (default: the checkpoint config's data_dir)
  --target CHIP        ch32v003 or ch32v002: fail unless weights + code fit flash and
                       scratch + stack fit RAM
  --plots              also write <name>.weights.svg and <name>.first_layer.png
  --test-images N      also write DIR/mnist_test_images.h with the first N test images
  --samples N          also write DIR/<name>.samples.h with the first N test samples: the firmware
                       build (mcu/) embeds it for this model (2 on the chip, all in the QEMU twin)
  --limit N            verify on the first N test images only (default: all)
  --predictions FILE   write images, labels and engine predictions (binary, for tests)
  --quiet              print errors only
  -h, --help           this text
)";

struct ParsedArgs {
  bitnetmcu::exporter::ExportOptions options;
  bool help = false;
};

int parse_count(const std::string& flag, const std::string& value) {
  try {
    size_t used = 0;
    const int n = std::stoi(value, &used);
    if (used == value.size() && n >= 0) return n;
  } catch (const std::exception&) {
  }
  throw bitnetmcu::exporter::ExportError(flag + " expects a non-negative integer, got '" + value + "'");
}

ParsedArgs parse_args(int argc, char** argv) {
  ParsedArgs a;
  std::string command = "bitnetmcu-export";
  for (int i = 1; i < argc; ++i) command += std::string(" ") + argv[i];
  a.options.command_line = command;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw bitnetmcu::exporter::ExportError(arg + " needs a value (see --help)");
      return argv[++i];
    };
    if (arg == "-h" || arg == "--help") a.help = true;
    else if (arg == "--name") a.options.name = value();
    else if (arg == "--out-dir") a.options.out_dir = value();
    else if (arg == "--data-dir") a.options.data_dir = value();
    else if (arg == "--target") a.options.target = value();
    else if (arg == "--plots") a.options.plots = true;
    else if (arg == "--test-images") a.options.test_images = parse_count(arg, value());
    else if (arg == "--samples") a.options.samples = parse_count(arg, value());
    else if (arg == "--limit") a.options.verify_limit = parse_count(arg, value());
    else if (arg == "--predictions") a.options.predictions_path = value();
    else if (arg == "--quiet") a.options.quiet = true;
    else if (!arg.empty() && arg[0] == '-') throw bitnetmcu::exporter::ExportError("unknown option " + arg + " (see --help)");
    else if (a.options.checkpoint_path.empty()) a.options.checkpoint_path = arg;
    else throw bitnetmcu::exporter::ExportError("more than one checkpoint given: " + a.options.checkpoint_path + ", " + arg);
  }
  if (!a.help && a.options.checkpoint_path.empty())
    throw bitnetmcu::exporter::ExportError("no checkpoint given (see --help)");
  return a;
}

int run(int argc, char** argv) {
  try {
    const ParsedArgs args = parse_args(argc, argv);
    if (args.help) {
      std::cout << kUsage;
      return EXIT_SUCCESS;
    }
    const auto result = bitnetmcu::exporter::run_export(args.options);
    std::cout << "header: " << result.header_path << "\n";
    return EXIT_SUCCESS;
  } catch (const std::exception& e) {
    std::cerr << "bitnetmcu-export: error: " << e.what() << "\n";
    return EXIT_FAILURE;
  }
}

}  // namespace

int main(int argc, char** argv) { return run(argc, argv); }
