// The classifier application: runs the configured model on the embedded test images and prints
// one line per image, then a summary. Identical on the chip, the QEMU twin and the host twin;
// only board::* differs. Build-time configuration:
//   BITNETMCU_MODEL_HEADER     "path/to/model.h"  (exported header, mcu/ch32v003/README.md)
//   BITNETMCU_MODEL_NAMESPACE  its namespace
//   BITNETMCU_IMAGES_HEADER    "path/to/images.h" (namespace bitnetmcu_test_images): the MNIST
//                              test images, or the model's own <name>.samples.h (bitnetmcu-export --samples)
//
// Line format (the parity test compares everything but the counter value):
//   image <i> label <l> pred <p> logits <hash> <counter_name> <n>
#include <bitnetmcu/model.hpp>

#include "board.hpp"
#include "print.hpp"

#include BITNETMCU_MODEL_HEADER
#include BITNETMCU_IMAGES_HEADER

namespace model = BITNETMCU_MODEL_NAMESPACE;
namespace images = bitnetmcu_test_images;
using Net = model::Net;

namespace {

static_assert(Net::input_size == sizeof(images::kImages[0]),
              "the test samples do not match the model's input size");

// Order-sensitive hash of the final accumulators, without a multiply (RV32EC has none).
uint32_t hash_logits(const int32_t* v, uint32_t n) {
  uint32_t h = 0x811C9DC5u;
  for (uint32_t i = 0; i < n; ++i) {
    h ^= static_cast<uint32_t>(v[i]);
    h = (h << 7 | h >> 25) + (h >> 3) + 0x9E3779B9u;
  }
  return h;
}

// Scratch for activations, in .bss: its size is part of the RAM the linker checks.
int32_t g_scratch[Net::scratch_words];
int32_t g_logits[Net::num_classes];

}  // namespace

int main() {
  board::init();
  console::print("model %s  weights %u B  scratch %u B  images %u\n", model::kName,
                 static_cast<unsigned>(Net::weight_bytes), static_cast<unsigned>(Net::scratch_bytes),
                 static_cast<unsigned>(images::kCount));
  uint32_t correct = 0, total_count = 0;
  for (uint32_t i = 0; i < images::kCount; ++i) {
    const uint32_t start = board::counter();
    const uint32_t pred = Net::run(images::kImages[i], g_scratch, g_logits);
    const uint32_t used = board::counter() - start;
    total_count += used;
    correct += pred == images::kLabels[i];
    console::print("image %u label %u pred %u logits %08x %s %u\n", static_cast<unsigned>(i),
                   static_cast<unsigned>(images::kLabels[i]), static_cast<unsigned>(pred),
                   static_cast<unsigned>(hash_logits(g_logits, Net::num_classes)), board::counter_name,
                   static_cast<unsigned>(used));
  }
  // Mean without a divide instruction: the count is small, subtract.
  uint32_t mean = 0, rest = total_count;
  while (rest >= images::kCount) rest -= images::kCount, ++mean;
  console::print("done model %s images %u correct %u mean_%s %u\n", model::kName,
                 static_cast<unsigned>(images::kCount), static_cast<unsigned>(correct), board::counter_name,
                 static_cast<unsigned>(mean));
  board::finish(0);
}
