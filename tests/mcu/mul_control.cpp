// Control object of the mul inspection: 8bit dense does multiply, so on rv32emc its code must
// contain `mul` -- if the check stops finding it, the check itself is broken.
#include <bitnetmcu/bitnetmcu.hpp>

extern "C" void mul_control(const uint32_t* w, uint32_t n_in, uint32_t n_out, const int8_t* x, int32_t* acc) {
  bitnetmcu::dense<bitnetmcu::Int8>(w, n_in, n_out, x, 0, acc);
}
