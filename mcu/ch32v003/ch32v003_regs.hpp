// The few CH32V003 registers the firmware touches (CH32V003 reference manual; CH32V002 keeps
// the same addresses, SPEC §7). Addresses and bits only -- no vendor SDK.
#pragma once
#include <stdint.h>

namespace ch32 {

inline volatile uint32_t& reg(uintptr_t address) { return *reinterpret_cast<volatile uint32_t*>(address); }

// Flash interface: access control (wait states).
constexpr uintptr_t FLASH_ACTLR = 0x40022000;
constexpr uint32_t FLASH_ACTLR_LATENCY_MASK = 3u, FLASH_ACTLR_LATENCY_1 = 1u;  // 1 wait state: 24..48 MHz

// Reset and clock control.
constexpr uintptr_t RCC_CTLR = 0x40021000;
constexpr uint32_t RCC_HSION = 1u << 0, RCC_PLLON = 1u << 24, RCC_PLLRDY = 1u << 25;
constexpr uintptr_t RCC_CFGR0 = 0x40021004;
constexpr uint32_t RCC_SW_MASK = 3u, RCC_SW_PLL = 2u, RCC_SWS_MASK = 3u << 2, RCC_SWS_PLL = 2u << 2;
// HPRE (bits 7:4) = 0: HCLK = SYSCLK; PLLSRC (bit 16) = 0: HSI (24 MHz) feeds the x2 PLL.
constexpr uintptr_t RCC_APB2PCENR = 0x40021018;
constexpr uint32_t RCC_AFIOEN = 1u << 0, RCC_IOPDEN = 1u << 5, RCC_USART1EN = 1u << 14;

// GPIO port D: 4 configuration bits per pin in CFGLR, [CNF1 CNF0 MODE1 MODE0].
constexpr uintptr_t GPIOD_CFGLR = 0x40011400;
constexpr uint32_t GPIO_AF_PUSH_PULL_10MHZ = 0x9u;  // CNF = 10 (alternate push-pull), MODE = 01

// USART1 (default mapping: TX = PD5, RX = PD6).
constexpr uintptr_t USART1_STATR = 0x40013800, USART1_DATAR = 0x40013804, USART1_BRR = 0x40013808,
                    USART1_CTLR1 = 0x4001380C;
constexpr uint32_t USART_TC = 1u << 6, USART_TXE = 1u << 7;
constexpr uint32_t USART_TE = 1u << 3, USART_UE = 1u << 13;
constexpr uint32_t USART_RXNE = 1u << 5, USART_RE = 1u << 2;  // receive (serial mode); PD6 stays a floating input

// SysTick (STK) of the QingKe V2A core: 32-bit up-counter.
constexpr uintptr_t STK_CTLR = 0xE000F000, STK_CNTL = 0xE000F008;
constexpr uint32_t STK_STE = 1u << 0, STK_STCLK_HCLK = 1u << 2;

}  // namespace ch32
