// Polled 8250 UART on COM1 (port 0x3f8): the guest's only console.
#pragma once

void uart_init(void);
void uart_putc(char c);
void uart_write(const char* s);
