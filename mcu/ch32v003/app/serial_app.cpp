// Serial mode: classifies samples sent over the UART instead of embedded test images. Same
// model build configuration as app.cpp (BITNETMCU_MODEL_HEADER / _NAMESPACE); runs on the chip
// (USART1, PD6 RX / PD5 TX, 115200 8N1), on its QEMU twin (the virt machine's 16550 UART) and
// on the host (stdin/stdout). Framing (mcu/ch32v003/README.md, "Serial mode"):
//
//   request  'S' (0x53), u16 little-endian payload length, payload, u8 sum of the payload bytes
//            payload: Net::input_size int8 network inputs, or -- for a model whose header quantizes
//            raw values (quantize_input, kInputOffset) -- Net::input_size float32 little-endian raw values
//   request  'Q' (0x51): the twins exit (the chip keeps listening)
//   response one text line per request:
//            "class <k> logits <l0> <l1> ..."                      classified
//            "error length <n> expected <m>"                       then the rest of the frame is drained
//            "error timeout after <i> of <m> bytes"                a byte gap over the board's timeout
//            "error checksum <got> expected <sum>"
//            "error start byte <b>"                                anything but 'S', 'Q', CR, LF
// At start the device prints "ready <model> inputs <n> <int8|float32> classes <k>".
#include <bitnetmcu/model.hpp>

#include "board.hpp"
#include "print.hpp"

#include BITNETMCU_MODEL_HEADER

namespace model = BITNETMCU_MODEL_NAMESPACE;
using Net = model::Net;

namespace {

#ifdef BITNETMCU_RAW_INPUT  // set by the build when the header has quantize_input()
constexpr uint32_t kValueBytes = 4;
constexpr const char kPayloadKind[] = "float32";
#else
constexpr uint32_t kValueBytes = 1;
constexpr const char kPayloadKind[] = "int8";
#endif
constexpr uint32_t kPayloadBytes = Net::input_size * kValueBytes;

alignas(4) uint8_t g_payload[kPayloadBytes];
#ifdef BITNETMCU_RAW_INPUT
int8_t g_input[Net::input_size];
#else
int8_t* const g_input = reinterpret_cast<int8_t*>(g_payload);  // int8 frames are the input itself
#endif
int32_t g_scratch[Net::scratch_words];
int32_t g_logits[Net::num_classes];

// Reads n bytes with the board's per-byte timeout; returns how many arrived.
uint32_t read_bytes(uint8_t* out, uint32_t n) {
  for (uint32_t i = 0; i < n; ++i)
    if (!board::read_byte(out + i, /*wait_forever=*/false)) return i;
  return n;
}

void drain() {
  uint8_t b;
  while (board::read_byte(&b, false)) {
  }
}

void serve_frame() {
  uint8_t len_bytes[2];
  if (read_bytes(len_bytes, 2) != 2) {
    console::print("error timeout after 0 of %u bytes\n", static_cast<unsigned>(kPayloadBytes));
    return;
  }
  const uint32_t length = len_bytes[0] | static_cast<uint32_t>(len_bytes[1]) << 8;
  if (length != kPayloadBytes) {
    drain();
    console::print("error length %u expected %u\n", static_cast<unsigned>(length), static_cast<unsigned>(kPayloadBytes));
    return;
  }
  const uint32_t got = read_bytes(g_payload, kPayloadBytes);
  uint8_t checksum = 0;
  if (got != kPayloadBytes || read_bytes(&checksum, 1) != 1) {
    console::print("error timeout after %u of %u bytes\n", static_cast<unsigned>(got), static_cast<unsigned>(kPayloadBytes));
    return;
  }
  uint8_t sum = 0;
  for (uint32_t i = 0; i < kPayloadBytes; ++i) sum = static_cast<uint8_t>(sum + g_payload[i]);
  if (sum != checksum) {
    console::print("error checksum %u expected %u\n", static_cast<unsigned>(checksum), static_cast<unsigned>(sum));
    return;
  }
#ifdef BITNETMCU_RAW_INPUT
  float raw[Net::input_size];
  for (uint32_t i = 0; i < Net::input_size; ++i) {
    const uint32_t bits = g_payload[4 * i] | static_cast<uint32_t>(g_payload[4 * i + 1]) << 8 |
                          static_cast<uint32_t>(g_payload[4 * i + 2]) << 16 | static_cast<uint32_t>(g_payload[4 * i + 3]) << 24;
    __builtin_memcpy(&raw[i], &bits, 4);
  }
  model::quantize_input(raw, g_input);
#endif
  const uint32_t cls = Net::run(g_input, g_scratch, g_logits);
  console::print("class %u logits", static_cast<unsigned>(cls));
  for (uint32_t i = 0; i < Net::num_classes; ++i) console::print(" %d", static_cast<int>(g_logits[i]));
  console::print("\n");
}

}  // namespace

int main() {
  board::init();
  console::print("ready %s inputs %u %s classes %u\n", model::kName, static_cast<unsigned>(Net::input_size),
                 kPayloadKind, static_cast<unsigned>(Net::num_classes));
  for (;;) {
    uint8_t start = 0;
    board::read_byte(&start, /*wait_forever=*/true);
    if (start == 'S') {
      serve_frame();
    } else if (start == 'Q') {
      board::finish(0);
    } else if (start != '\r' && start != '\n') {
      console::print("error start byte %u\n", static_cast<unsigned>(start));
    }
  }
}
