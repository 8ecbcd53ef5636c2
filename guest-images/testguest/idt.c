#include "idt.h"

#include "check.h"
#include "lapic.h"
#include "print.h"

typedef unsigned int uword_t __attribute__((mode(__word__)));

// Intel SDM vol. 3, 6.14.1: a 64-bit interrupt gate descriptor.
struct idt_gate {
  uint16_t offset_low;
  uint16_t selector;
  uint8_t ist;
  uint8_t type_attr;
  uint16_t offset_mid;
  uint32_t offset_high;
  uint32_t reserved;
} __attribute__((packed));
_Static_assert(sizeof(struct idt_gate) == 16, "64-bit IDT gates are 16 bytes");

struct idt_descriptor {
  uint16_t limit;
  uint64_t base;
} __attribute__((packed));

enum {
  kCodeSelector = 0x08,   // entry.S GDT
  kInterruptGate = 0x8e,  // present, DPL 0, 64-bit interrupt gate (clears IF)
  kFirstExternal = 32,
};

static struct idt_gate idt[256] __attribute__((aligned(16)));
static volatile int unexpected;

enum { kPageFault = 14 };

static void report_exception(int vector, const struct interrupt_frame* f, uint64_t error) {
  printf("exception %d at rip 0x%lx error 0x%lx\n", vector, f->rip, error);
  if (vector == kPageFault) {
    uint64_t cr2;
    __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
    printf("page fault address 0x%lx\n", cr2);
  }
  check(false, "no unexpected CPU exception");
  finish();
}

#define EXCEPTION(n)                                                                \
  __attribute__((interrupt)) static void exception_##n(struct interrupt_frame* f) { \
    report_exception(n, f, 0);                                                      \
  }
#define EXCEPTION_ERR(n)                                                                           \
  __attribute__((interrupt)) static void exception_##n(struct interrupt_frame* f, uword_t error) { \
    report_exception(n, f, error);                                                                 \
  }

// clang-format off
EXCEPTION(0) EXCEPTION(1) EXCEPTION(2) EXCEPTION(3) EXCEPTION(4) EXCEPTION(5) EXCEPTION(6)
EXCEPTION(7) EXCEPTION_ERR(8) EXCEPTION(9) EXCEPTION_ERR(10) EXCEPTION_ERR(11) EXCEPTION_ERR(12)
EXCEPTION_ERR(13) EXCEPTION_ERR(14) EXCEPTION(15) EXCEPTION(16) EXCEPTION_ERR(17) EXCEPTION(18)
EXCEPTION(19) EXCEPTION(20) EXCEPTION_ERR(21) EXCEPTION(22) EXCEPTION(23) EXCEPTION(24)
EXCEPTION(25) EXCEPTION(26) EXCEPTION(27) EXCEPTION(28) EXCEPTION_ERR(29) EXCEPTION_ERR(30)
EXCEPTION(31)

static void* const exception_handlers[kFirstExternal] = {
    exception_0,  exception_1,  exception_2,  exception_3,  exception_4,  exception_5,
    exception_6,  exception_7,  exception_8,  exception_9,  exception_10, exception_11,
    exception_12, exception_13, exception_14, exception_15, exception_16, exception_17,
    exception_18, exception_19, exception_20, exception_21, exception_22, exception_23,
    exception_24, exception_25, exception_26, exception_27, exception_28, exception_29,
    exception_30, exception_31,
};
// clang-format on

static INTERRUPT_HANDLER(unexpected_interrupt) {
  unexpected++;
  lapic_eoi();
}

static void set_gate(uint8_t vector, const void* handler) {
  uint64_t a = (uint64_t)(uintptr_t)handler;
  idt[vector] = (struct idt_gate){
      .offset_low = (uint16_t)a,
      .selector = kCodeSelector,
      .type_attr = kInterruptGate,
      .offset_mid = (uint16_t)(a >> 16),
      .offset_high = (uint32_t)(a >> 32),
  };
}

void idt_init(void) {
  for (int v = 0; v < 256; v++) {
    set_gate((uint8_t)v, v < kFirstExternal ? exception_handlers[v] : (void*)unexpected_interrupt);
  }
  struct idt_descriptor d = {.limit = sizeof(idt) - 1, .base = (uint64_t)(uintptr_t)idt};
  __asm__ volatile("lidt %0" ::"m"(d));
}

void idt_set_handler(uint8_t vector, interrupt_handler_t handler) {
  set_gate(vector, (void*)handler);
}

int idt_unexpected_interrupts(void) { return unexpected; }
