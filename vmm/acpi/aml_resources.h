// Resource descriptors for _CRS (ACPI 6.5 section 6.4) and the ResourceTemplate buffer that holds
// them. Only the descriptors a PCI host bridge and a legacy UART need are here.
#pragma once

#include <cstdint>
#include <vector>

#include "vmm/acpi/aml.h"

namespace ioasis::acpi::aml {

// One encoded resource descriptor.
struct Resource {
  std::vector<uint8_t> bytes;
  bool valid = true;
};

// Cacheability of a memory range (Memory Resource Flag, section 6.4.3.5.4.1, bits 1-2).
enum class MemoryCaching : uint8_t {
  kNonCacheable = 0,
  kCacheable = 1,
  kWriteCombining = 2,
  kPrefetchable = 3,
};

// Address space descriptors as a bridge produces them: fixed minimum and maximum, positive
// decode, granularity 0, no translation. `max` is inclusive.
Resource word_bus_number(uint16_t min, uint16_t max);
Resource word_io(uint16_t min, uint16_t max);
Resource dword_io(uint32_t min, uint32_t max);
Resource dword_memory(uint32_t min, uint32_t max, MemoryCaching caching);
Resource qword_memory(uint64_t min, uint64_t max, MemoryCaching caching);

// Memory32Fixed(ReadWrite, base, length) (section 6.4.3.4), as a consumer: the way a device
// claims a fixed range such as the ECAM window.
Resource memory32_fixed(uint32_t base, uint32_t length);

// IO(Decode16, min, max, alignment, length) (section 6.4.2.5).
Resource io(uint16_t min, uint16_t max, uint8_t alignment, uint8_t length);

// IRQNoFlags() { irq } (section 6.4.2.1): edge triggered, active high, exclusive. IRQ 0-15.
Resource irq_no_flags(uint8_t irq);

// Interrupt(ResourceConsumer, Edge, ActiveHigh, Exclusive) {gsi}: the Extended Interrupt
// Descriptor (6.4.3.6), which names a GSI rather than an ISA IRQ.
Resource edge_interrupt(uint32_t gsi);

// ResourceTemplate() { ... }: a Buffer of the descriptors closed by an End Tag (section 6.4.2.9)
// whose checksum byte is 0, which means "treat as valid".
Aml resource_template(const std::vector<Resource>& resources);

}  // namespace ioasis::acpi::aml
