// Cross-compile check of an exported header for the CH32V003 (RV32EC, ILP32E): instantiates
// the model's run() so every kernel it uses is compiled, with -Wall -Wextra -Werror.
#include "fc_tiny.h"
#include "mnist_test_images.h"

namespace {
int32_t scratch[BITNETMCU_MODEL_NAMESPACE::Net::scratch_words];
}

extern "C" uint32_t classify_test_image(uint32_t i) {
  return BITNETMCU_MODEL_NAMESPACE::Net::run(bitnetmcu_test_images::kImages[i % bitnetmcu_test_images::kCount], scratch);
}
