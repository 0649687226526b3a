// Test helper for tests/python/test_config_twin.py: the C++ configuration (training/config.cpp,
// without LibTorch, so that hundreds of cases take a moment) for each line of stdin.
// Input line (JSON, read with yaml-cpp): {"yaml": configuration text, "set": ["key=value", ...]}.
// Output line (JSON): {"ok": true, "yaml": config_to_yaml, "run_name": ..., "schemes": [[layer,
// scheme or null], ...]} or {"ok": false, "error": what()}. The overrides apply in order to the
// configuration text, as `bitnetmcu-train FILE.yaml --set ...` does.
#include "training/config.hpp"

#include <yaml-cpp/yaml.h>

#include <iostream>
#include <string>

using namespace bitnetmcu::train;

namespace {
std::string json_string(const std::string& s) {
  static const char* hex = "0123456789abcdef";
  std::string out = "\"";
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') out += std::string("\\") + c;
    else if (u < 0x20) out += std::string("\\u00") + hex[u >> 4] + hex[u & 15];
    else out += c;
  }
  return out + "\"";
}
}  // namespace

int main() {
  std::string line;
  while (std::getline(std::cin, line)) {
    try {
      const YAML::Node request = YAML::Load(line);
      Config cfg = config_from_yaml_text(request["yaml"].as<std::string>(), "case.yaml");
      for (const auto& item : request["set"]) apply_override(cfg, item.as<std::string>());
      std::string schemes = "[";
      for (const std::string& layer : cfg.layer_names()) {
        const auto s = cfg.layer_scheme(layer);
        schemes += (schemes.size() > 1 ? ", [" : "[") + json_string(layer) + ", " +
                   (s ? json_string(bitnetmcu::scheme_name(*s)) : std::string("null")) + "]";
      }
      std::cout << "{\"ok\": true, \"yaml\": " << json_string(config_to_yaml(cfg))
                << ", \"run_name\": " << json_string(cfg.run_name()) << ", \"schemes\": " << schemes << "]}\n";
    } catch (const std::exception& e) {
      std::cout << "{\"ok\": false, \"error\": " << json_string(e.what()) << "}\n";
    }
  }
  return 0;
}
