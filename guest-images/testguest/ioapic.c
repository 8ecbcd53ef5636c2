#include "ioapic.h"

#include "arch.h"
#include "lapic.h"

#define kIoapicBase 0xfec00000ull

enum {
  kIoregsel = 0x00,
  kIowin = 0x10,
  kIoapicRegVersion = 0x01,
  kIoapicRegRedirection = 0x10,
};

uint32_t ioapic_read(uint32_t reg) {
  mmio_write32(kIoapicBase + kIoregsel, reg);
  return mmio_read32(kIoapicBase + kIowin);
}

void ioapic_write(uint32_t reg, uint32_t value) {
  mmio_write32(kIoapicBase + kIoregsel, reg);
  mmio_write32(kIoapicBase + kIowin, value);
}

uint32_t ioapic_pins(void) { return ((ioapic_read(kIoapicRegVersion) >> 16) & 0xff) + 1; }

static uint32_t low_reg(uint32_t gsi) { return kIoapicRegRedirection + 2 * gsi; }

uint64_t ioapic_read_entry(uint32_t gsi) {
  uint64_t low = ioapic_read(low_reg(gsi));
  return low | (uint64_t)ioapic_read(low_reg(gsi) + 1) << 32;
}

void ioapic_write_entry(uint32_t gsi, uint64_t entry) {
  ioapic_write(low_reg(gsi), (uint32_t)(entry | kIoapicEntryMasked));
  ioapic_write(low_reg(gsi) + 1, (uint32_t)(entry >> 32));
  ioapic_write(low_reg(gsi), (uint32_t)entry);
}

void ioapic_route(uint32_t gsi, uint8_t vector, enum ioapic_trigger trigger,
                  enum ioapic_polarity polarity, bool masked) {
  uint64_t entry = vector | (uint64_t)lapic_id() << kIoapicEntryDestShift;
  if (trigger == IOAPIC_LEVEL) entry |= kIoapicEntryLevel;
  if (polarity == IOAPIC_ACTIVE_LOW) entry |= kIoapicEntryActiveLow;
  if (masked) entry |= kIoapicEntryMasked;
  ioapic_write_entry(gsi, entry);
}

void ioapic_set_masked(uint32_t gsi, bool masked) {
  uint32_t low = ioapic_read(low_reg(gsi));
  low = masked ? low | (uint32_t)kIoapicEntryMasked : low & ~(uint32_t)kIoapicEntryMasked;
  ioapic_write(low_reg(gsi), low);
}
