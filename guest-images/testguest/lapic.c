#include "lapic.h"

#include "arch.h"
#include "deadline.h"

enum {
  kMsrApicBase = 0x1b,
  kApicBaseEnable = 1 << 11,
  kApicBaseX2apic = 1 << 10,
  kIcrDeliveryPending = 1 << 12,
  kIcrShorthandSelf = 1 << 18,
  kIcrMaxPolls = 1000,
  kPic1Data = 0x21,
  kPic2Data = 0xa1,
};

#define kLapicBase 0xfee00000ull

uint32_t lapic_read(uint32_t reg) { return mmio_read32(kLapicBase + reg); }
void lapic_write(uint32_t reg, uint32_t value) { mmio_write32(kLapicBase + reg, value); }

bool lapic_enable(uint8_t spurious_vector, const char** error) {
  uint64_t base = rdmsr(kMsrApicBase);
  if (!(base & kApicBaseEnable)) {
    *error = "IA32_APIC_BASE: APIC globally disabled";
    return false;
  }
  if (base & kApicBaseX2apic) {
    *error = "IA32_APIC_BASE: x2APIC mode, xAPIC MMIO unavailable";
    return false;
  }
  if ((base & 0xffffff000ull) != kLapicBase) {
    *error = "IA32_APIC_BASE: APIC not at 0xfee00000";
    return false;
  }
  lapic_write(kLapicTpr, 0);
  lapic_write(kLapicSvr, kLapicSvrEnable | spurious_vector);
  return true;
}

uint8_t lapic_id(void) { return (uint8_t)(lapic_read(kLapicId) >> 24); }
void lapic_eoi(void) { lapic_write(kLapicEoi, 0); }

static bool vector_bit(uint32_t reg_base, uint8_t vector) {
  return (lapic_read(reg_base + (vector / 32) * 0x10) >> (vector % 32)) & 1;
}

bool lapic_irr(uint8_t vector) { return vector_bit(kLapicIrr, vector); }

int lapic_take_vector(uint8_t vector, volatile int* handled, uint32_t ms) {
  int before = *handled;
  struct deadline d = deadline_after_ms(ms);
  while (!lapic_irr(vector) && !deadline_expired(&d)) cpu_relax();
  if (lapic_irr(vector)) irq_enable_and_halt();
  return *handled - before;
}
bool lapic_isr(uint8_t vector) { return vector_bit(kLapicIsr, vector); }
bool lapic_tmr(uint8_t vector) { return vector_bit(kLapicTmr, vector); }

bool lapic_send_self_ipi(uint8_t vector) {
  lapic_write(kLapicIcrHigh, 0);
  lapic_write(kLapicIcrLow, kIcrShorthandSelf | vector);
  for (int i = 0; i < kIcrMaxPolls; i++) {
    if (!(lapic_read(kLapicIcrLow) & kIcrDeliveryPending)) return true;
  }
  return false;
}

void lapic_timer_start_oneshot(uint8_t vector, uint32_t divide, uint32_t count) {
  lapic_write(kLapicTimerDivide, divide);
  lapic_write(kLapicLvtTimer, vector);  // one-shot mode, unmasked
  lapic_write(kLapicTimerInitial, count);
}

void lapic_timer_stop(void) {
  lapic_write(kLapicTimerInitial, 0);
  lapic_write(kLapicLvtTimer, kLapicLvtMasked);
}

void legacy_pic_mask_all(void) {
  outb(kPic1Data, 0xff);
  outb(kPic2Data, 0xff);
}
