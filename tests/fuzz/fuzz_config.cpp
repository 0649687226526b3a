// libFuzzer target: the YAML configuration parser (training/config.cpp, yaml-cpp). Only
// ConfigError (naming the origin) may escape; an accepted configuration must survive
// config_to_yaml and parse back to the same text.
#include <cstring>
#include <string>

#include "training/config.hpp"

using namespace bitnetmcu::train;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  Config cfg;
  try {
    cfg = config_from_yaml_text(text, "fuzz.yaml");
  } catch (const ConfigError& e) {
    if (!std::strstr(e.what(), "fuzz.yaml")) __builtin_trap();  // every error names the file
    return 0;
  }
  const std::string dumped = config_to_yaml(cfg);  // throws nothing for a valid configuration
  if (config_to_yaml(config_from_yaml_text(dumped, "dump")) != dumped) __builtin_trap();
  return 0;
}
