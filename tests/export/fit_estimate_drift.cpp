// The exporter's fit estimate against a linked firmware image (ctest "fit estimate: <model> on
// <chip> ..."): reads a model file (.bnm), estimates its chip image as the exporter does, and
// compares with the size report of the image the firmware build linked for the same model.
//   fit_estimate_drift <model.bnm> <chip> <name>-<chip>.size.txt <embedded samples>
// Fails when the flash estimate is off by more than kFitMargin bytes (either way) or the RAM
// estimate by more than kRamFitMargin: then recalibrate training/exporter/fit_estimate.cpp.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <regex>
#include <string>
#include <vector>

#include "bitnetmcu/model_file.hpp"
#include "training/exporter/exporter.hpp"

namespace {

long size_field(const std::string& report, const std::string& key) {
  std::smatch m;
  if (!std::regex_search(report, m, std::regex(key + "=([0-9]+)"))) return -1;
  return std::stol(m[1]);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace bitnetmcu;
  using namespace bitnetmcu::exporter;
  if (argc == 2 && (!std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h"))) {
    std::printf("usage: fit_estimate_drift MODEL.bnm CHIP SIZE_REPORT EMBEDDED_SAMPLES\n"
                "Compares the exporter's flash/RAM estimate of MODEL on CHIP with the linked image's size\n"
                "report; fails beyond %zu bytes of flash or %zu of RAM.\n", kFitMargin, kRamFitMargin);
    return 0;
  }
  if (argc != 5) {
    std::fprintf(stderr, "usage: fit_estimate_drift MODEL.bnm CHIP SIZE_REPORT EMBEDDED_SAMPLES (see --help)\n");
    return 2;
  }
  std::ifstream mf(argv[1], std::ios::binary);
  const std::vector<char> bytes((std::istreambuf_iterator<char>(mf)), std::istreambuf_iterator<char>());
  std::vector<uint32_t> aligned((bytes.size() + 3) / 4);
  if (!bytes.empty()) std::memcpy(aligned.data(), bytes.data(), bytes.size());
  LayerDesc layers[kModelFileMaxLayers];
  ModelFileInfo info{};
  const ModelFileError err = parse_model_file(reinterpret_cast<const uint8_t*>(aligned.data()), bytes.size(), layers,
                                              kModelFileMaxLayers, &info);
  if (err != ModelFileError::Ok) {
    std::fprintf(stderr, "%s: not a readable model file\n", argv[1]);
    return 1;
  }
  const Target* target = find_target(argv[2]);
  if (!target) {
    std::fprintf(stderr, "unknown chip %s\n", argv[2]);
    return 2;
  }
  std::ifstream rf(argv[3]);
  const std::string report((std::istreambuf_iterator<char>(rf)), std::istreambuf_iterator<char>());
  const long flash = size_field(report, "flash_bytes"), ram = size_field(report, "ram_bytes");
  if (flash < 0 || ram < 0) {
    std::fprintf(stderr, "%s: no flash_bytes= / ram_bytes= (was the firmware built?)\n", argv[3]);
    return 1;
  }
  const PackedModel model = packed_model_from_layers(layers, info.n_layers, info.input_size);
  const TargetFit fit = check_target(model, *target, static_cast<uint32_t>(std::atoi(argv[4])));
  const long flash_drift = long(fit.flash_needed) - flash, ram_drift = long(fit.ram_needed) - ram;
  std::printf("%s on %s: flash estimate %zu (weights %zu + code %zu), linked %ld: %+ld B (margin %zu)\n", argv[1],
              argv[2], fit.flash_needed, fit.weight_bytes, fit.code_bytes_estimate, flash, flash_drift, kFitMargin);
  std::printf("%s on %s: RAM estimate %zu, linked %ld incl. stack bound: %+ld B (margin %zu)\n", argv[1], argv[2],
              fit.ram_needed, ram, ram_drift, kRamFitMargin);
  const bool ok = std::labs(flash_drift) <= long(kFitMargin) && std::labs(ram_drift) <= long(kRamFitMargin);
  if (!ok) std::printf("DRIFT: recalibrate training/exporter/fit_estimate.cpp\n");
  return ok ? 0 : 1;
}
