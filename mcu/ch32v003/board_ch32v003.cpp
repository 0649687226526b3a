// Board of the real chip (CH32V003, and CH32V002 from the same source): 48 MHz from HSI x2 PLL,
// SysTick counting HCLK cycles, USART1 TX on PD5 / RX on PD6 at 115200 8N1.
#include "app/board.hpp"
#include "ch32v003_regs.hpp"

namespace board {

using namespace ch32;

constexpr uint32_t kHclkHz = 48000000, kBaud = 115200;

const char counter_name[] = "cycles";

void init() {
  // One flash wait state before the clock goes above 24 MHz.
  reg(FLASH_ACTLR) = (reg(FLASH_ACTLR) & ~FLASH_ACTLR_LATENCY_MASK) | FLASH_ACTLR_LATENCY_1;
  reg(RCC_CTLR) |= RCC_HSION;
  reg(RCC_CFGR0) = 0;  // SYSCLK = HSI while the PLL locks; HCLK = SYSCLK; PLL source = HSI
  reg(RCC_CTLR) |= RCC_PLLON;
  while (!(reg(RCC_CTLR) & RCC_PLLRDY)) {
  }
  reg(RCC_CFGR0) = (reg(RCC_CFGR0) & ~RCC_SW_MASK) | RCC_SW_PLL;
  while ((reg(RCC_CFGR0) & RCC_SWS_MASK) != RCC_SWS_PLL) {
  }

  // SysTick: free-running from HCLK, read as a cycle counter (no interrupt).
  reg(STK_CTLR) = 0;
  reg(STK_CNTL) = 0;
  reg(STK_CTLR) = STK_STE | STK_STCLK_HCLK;

  // USART1 TX on PD5.
  reg(RCC_APB2PCENR) |= RCC_AFIOEN | RCC_IOPDEN | RCC_USART1EN;
  reg(GPIOD_CFGLR) = (reg(GPIOD_CFGLR) & ~(0xFu << (4 * 5))) | (GPIO_AF_PUSH_PULL_10MHZ << (4 * 5));
  reg(USART1_BRR) = (kHclkHz + kBaud / 2) / kBaud;  // 16x oversampling: mantissa.fraction = 26.1
  reg(USART1_CTLR1) = USART_UE | USART_TE | USART_RE;
}

static void transmit(uint8_t byte) {
  while (!(reg(USART1_STATR) & USART_TXE)) {
  }
  reg(USART1_DATAR) = byte;
}

void put_char(char c) {
  if (c == '\n') transmit('\r');  // terminals want CR LF
  transmit(static_cast<uint8_t>(c));
}

uint32_t counter() { return reg(STK_CNTL); }

bool read_byte(uint8_t* byte, bool wait_forever) {
  constexpr uint32_t kTimeoutCycles = kHclkHz / 10;  // 100 ms between the bytes of a frame
  const uint32_t start = counter();
  while (!(reg(USART1_STATR) & USART_RXNE))
    if (!wait_forever && counter() - start > kTimeoutCycles) return false;
  *byte = static_cast<uint8_t>(reg(USART1_DATAR));
  return true;
}

void finish(int) {
  while (!(reg(USART1_STATR) & USART_TC)) {  // let the last byte leave the shift register
  }
  for (;;) {
  }
}

}  // namespace board
