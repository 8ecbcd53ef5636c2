// The I/O APIC at 0xfec00000 (Intel 82093AA datasheet): registers are reached indirectly, by
// writing a register index to IOREGSEL and accessing IOWIN. Redirection entry n is the 64-bit
// register pair 0x10 + 2n (low) and 0x11 + 2n (high) and routes GSI n.
#pragma once

#include <stdbool.h>
#include <stdint.h>

// Redirection entry bits (82093AA section 3.2.4).
#define kIoapicEntryVectorMask 0xffull
#define kIoapicEntryDeliveryPending (1ull << 12)
#define kIoapicEntryActiveLow (1ull << 13)
#define kIoapicEntryRemoteIrr (1ull << 14)  // level only: delivered, EOI not yet seen
#define kIoapicEntryLevel (1ull << 15)
#define kIoapicEntryMasked (1ull << 16)
#define kIoapicEntryDestShift 56

enum ioapic_trigger { IOAPIC_EDGE, IOAPIC_LEVEL };
enum ioapic_polarity { IOAPIC_ACTIVE_HIGH, IOAPIC_ACTIVE_LOW };

uint32_t ioapic_read(uint32_t reg);
void ioapic_write(uint32_t reg, uint32_t value);

// Number of redirection entries, from the version register's maximum entry field.
uint32_t ioapic_pins(void);

uint64_t ioapic_read_entry(uint32_t gsi);
// Writes the entry masked first, so no interrupt is ever delivered through a half-written
// entry, then the high dword, then the low dword as given.
void ioapic_write_entry(uint32_t gsi, uint64_t entry);

// Routes gsi to vector on this CPU: fixed delivery, physical destination (this LAPIC's ID).
void ioapic_route(uint32_t gsi, uint8_t vector, enum ioapic_trigger trigger,
                  enum ioapic_polarity polarity, bool masked);
// Changes only the mask bit of gsi's entry.
void ioapic_set_masked(uint32_t gsi, bool masked);
