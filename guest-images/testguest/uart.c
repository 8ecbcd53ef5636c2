#include "uart.h"

#include "arch.h"

enum {
  kCom1 = 0x3f8,
  kRegData = 0,
  kRegIer = 1,
  kRegFcr = 2,
  kRegLcr = 3,
  kRegMcr = 4,
  kRegLsr = 5,
  kLsrThrEmpty = 0x20,
  kLcr8N1 = 0x03,
  kLcrDlab = 0x80,
  // An emulated UART reports the holding register empty at once; a real or slower one gets a
  // bounded number of polls before we write anyway rather than hang the test.
  kMaxPolls = 10000,
};

void uart_init(void) {
  outb(kCom1 + kRegIer, 0x00);
  outb(kCom1 + kRegLcr, kLcrDlab);
  outb(kCom1 + kRegData, 0x01);  // divisor 1: 115200 baud
  outb(kCom1 + kRegIer, 0x00);
  outb(kCom1 + kRegLcr, kLcr8N1);
  outb(kCom1 + kRegFcr, 0x00);
  outb(kCom1 + kRegMcr, 0x03);  // DTR | RTS
}

void uart_putc(char c) {
  for (int i = 0; i < kMaxPolls; i++) {
    if (inb(kCom1 + kRegLsr) & kLsrThrEmpty) break;
  }
  outb(kCom1 + kRegData, (uint8_t)c);
}

void uart_write(const char* s) {
  while (*s) uart_putc(*s++);
}
