// Catch2 main of the training tests. Single-threaded torch: the tests run on a shared 2-core
// machine next to other builds, where spinning intra-op threads slow tiny ops down by 10x+.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <torch/torch.h>

int main(int argc, char** argv) {
  torch::set_num_threads(1);
  return Catch::Session().run(argc, argv);
}
