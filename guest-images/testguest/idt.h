// The interrupt descriptor table. Handlers are C functions with gcc's interrupt attribute
// (allowed because the guest builds with -mgeneral-regs-only), so no assembly stubs are needed.
#pragma once

#include <stdint.h>

struct interrupt_frame {
  uint64_t rip;
  uint64_t cs;
  uint64_t rflags;
  uint64_t rsp;
  uint64_t ss;
};

typedef void (*interrupt_handler_t)(struct interrupt_frame*);

#define INTERRUPT_HANDLER(name) \
  __attribute__((interrupt)) void name(struct interrupt_frame* frame __attribute__((unused)))

// Installs the table (main() does, before any scenario runs): exceptions print their vector and RIP
// and end the run as a failure; vectors 32-255 without a handler are counted as unexpected and
// acknowledged at the LAPIC.
void idt_init(void);
void idt_set_handler(uint8_t vector, interrupt_handler_t handler);
int idt_unexpected_interrupts(void);
