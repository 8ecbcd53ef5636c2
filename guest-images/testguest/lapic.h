// The local APIC in xAPIC mode through its MMIO page (Intel SDM vol. 3, chapter 11).
#pragma once

#include <stdbool.h>
#include <stdint.h>

enum {
  kLapicId = 0x20,
  kLapicVersion = 0x30,
  kLapicTpr = 0x80,
  kLapicEoi = 0xb0,
  kLapicSvr = 0xf0,
  kLapicIsr = 0x100,  // eight 32-bit registers, 16 bytes apart
  kLapicTmr = 0x180,  // trigger mode: set when the vector was accepted as level triggered
  kLapicIrr = 0x200,
  kLapicIcrLow = 0x300,
  kLapicIcrHigh = 0x310,
  kLapicLvtTimer = 0x320,
  kLapicTimerInitial = 0x380,
  kLapicTimerCurrent = 0x390,
  kLapicTimerDivide = 0x3e0,
  kLapicSvrEnable = 0x100,
  kLapicLvtMasked = 0x10000,
  kLapicTimerDivideBy1 = 0xb,
  kLapicTimerDivideBy16 = 0x3,
};

uint32_t lapic_read(uint32_t reg);
void lapic_write(uint32_t reg, uint32_t value);

// Checks IA32_APIC_BASE (enabled, xAPIC mode, default base), then software-enables the APIC
// with the given spurious vector and TPR 0. On failure returns false and sets *error.
bool lapic_enable(uint8_t spurious_vector, const char** error);
uint8_t lapic_id(void);
void lapic_eoi(void);
bool lapic_irr(uint8_t vector);
// With interrupts off, waits until `vector` is pending at the LAPIC or `ms` pass, then lets it in
// once. Returns how far the handler moved *handled meanwhile.
int lapic_take_vector(uint8_t vector, volatile int* handled, uint32_t ms);
bool lapic_isr(uint8_t vector);
bool lapic_tmr(uint8_t vector);

// Fixed self-IPI through the ICR; false if the delivery status never returns to idle.
bool lapic_send_self_ipi(uint8_t vector);

void lapic_timer_start_oneshot(uint8_t vector, uint32_t divide, uint32_t count);
void lapic_timer_stop(void);

// Masks both legacy 8259 PICs so firmware-programmed vectors cannot arrive; harmless where no
// PIC exists.
void legacy_pic_mask_all(void);
