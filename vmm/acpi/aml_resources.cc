#include "vmm/acpi/aml_resources.h"

#include <cstddef>
#include <cstring>

namespace ioasis::acpi::aml {
namespace {

// Word/DWord/QWord Address Space Descriptors share one shape and differ in field width
// (ACPI 6.5 sections 6.4.3.5.1-6.4.3.5.3).
template <typename T>
struct [[gnu::packed]] AddressSpaceDescriptor {
  uint8_t tag;
  uint16_t length;  // bytes after this field
  uint8_t resource_type;
  uint8_t general_flags;
  uint8_t type_flags;
  T granularity;
  T min;
  T max;
  T translation;
  T range_length;
};
static_assert(sizeof(AddressSpaceDescriptor<uint16_t>) == 16);
static_assert(sizeof(AddressSpaceDescriptor<uint32_t>) == 26);
static_assert(sizeof(AddressSpaceDescriptor<uint64_t>) == 46);
static_assert(offsetof(AddressSpaceDescriptor<uint64_t>, min) == 14);

// Large resource item names (section 6.4.3): bit 7 set marks a large item.
constexpr uint8_t kTagDWordAddress = 0x87;
constexpr uint8_t kTagWordAddress = 0x88;
constexpr uint8_t kTagQWordAddress = 0x8a;

enum ResourceType : uint8_t { kMemoryRange = 0, kIoRange = 1, kBusNumberRange = 2 };

// General flags: _MAF (bit 3) and _MIF (bit 2) fixed, _DEC (bit 1) clear for positive decode,
// bit 0 clear for a producer, the role of a bridge window.
constexpr uint8_t kProducerFixedRange = 0x0c;
// I/O type-specific flags: _RNG = 3, the range covers both ISA and non-ISA ports.
constexpr uint8_t kIoEntireRange = 0x03;
// Memory type-specific flags: _RW (bit 0) set for read/write; _MEM in bits 1-2.
constexpr uint8_t kMemoryReadWrite = 0x01;

template <typename T>
Resource address_space(uint8_t tag, ResourceType type, uint8_t type_flags, T min, T max) {
  AddressSpaceDescriptor<T> d{};
  d.tag = tag;
  d.length = sizeof(d) - 3;
  d.resource_type = type;
  d.general_flags = kProducerFixedRange;
  d.type_flags = type_flags;
  d.min = min;
  d.max = max;
  d.range_length = static_cast<T>(max - min + 1);
  Resource r;
  r.bytes.resize(sizeof(d));
  std::memcpy(r.bytes.data(), &d, sizeof(d));
  // A window whose length does not fit its own field (the whole 64-bit space) or runs backwards
  // cannot be described.
  r.valid = min <= max && d.range_length != 0;
  return r;
}

uint8_t memory_flags(MemoryCaching caching) {
  return static_cast<uint8_t>(kMemoryReadWrite | (static_cast<uint8_t>(caching) << 1));
}

}  // namespace

Resource word_bus_number(uint16_t min, uint16_t max) {
  return address_space<uint16_t>(kTagWordAddress, kBusNumberRange, 0, min, max);
}

Resource word_io(uint16_t min, uint16_t max) {
  return address_space<uint16_t>(kTagWordAddress, kIoRange, kIoEntireRange, min, max);
}

Resource dword_io(uint32_t min, uint32_t max) {
  return address_space<uint32_t>(kTagDWordAddress, kIoRange, kIoEntireRange, min, max);
}

Resource dword_memory(uint32_t min, uint32_t max, MemoryCaching caching) {
  return address_space<uint32_t>(kTagDWordAddress, kMemoryRange, memory_flags(caching), min, max);
}

Resource qword_memory(uint64_t min, uint64_t max, MemoryCaching caching) {
  return address_space<uint64_t>(kTagQWordAddress, kMemoryRange, memory_flags(caching), min, max);
}

Resource memory32_fixed(uint32_t base, uint32_t length) {
  // Large item 0x06 (tag 0x86) with 9 bytes of data; information bit 0 set for read/write.
  Resource r;
  r.bytes = {0x86, 0x09, 0x00, 0x01};
  for (uint32_t v : {base, length}) {
    for (int i = 0; i < 4; ++i) r.bytes.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  r.valid = length != 0 && base + uint64_t{length} - 1 <= 0xffffffff;
  return r;
}

Resource io(uint16_t min, uint16_t max, uint8_t alignment, uint8_t length) {
  // Small item 0x08 of 7 bytes (tag 0x47); information bit 0 set for 16-bit decode.
  Resource r;
  r.bytes = {0x47,
             0x01,
             static_cast<uint8_t>(min),
             static_cast<uint8_t>(min >> 8),
             static_cast<uint8_t>(max),
             static_cast<uint8_t>(max >> 8),
             alignment,
             length};
  r.valid = min <= max;
  return r;
}

Resource irq_no_flags(uint8_t irq) {
  // Small item 0x04 of 2 bytes (tag 0x22): a 16-bit mask of ISA IRQs. Omitting the optional
  // flags byte means edge triggered, active high.
  Resource r;
  uint16_t mask = irq < 16 ? static_cast<uint16_t>(1u << irq) : 0;
  r.bytes = {0x22, static_cast<uint8_t>(mask), static_cast<uint8_t>(mask >> 8)};
  r.valid = irq < 16;
  return r;
}

Resource edge_interrupt(uint32_t gsi) {
  // Large item 0x09 (tag 0x89), 6 bytes: flags (bit 0 consumer, bit 1 edge; active high and
  // exclusive are 0), one table entry, the 32-bit interrupt number.
  Resource r;
  r.bytes = {0x89,
             6,
             0,
             0x03,
             1,
             static_cast<uint8_t>(gsi),
             static_cast<uint8_t>(gsi >> 8),
             static_cast<uint8_t>(gsi >> 16),
             static_cast<uint8_t>(gsi >> 24)};
  return r;
}

Aml resource_template(const std::vector<Resource>& resources) {
  std::vector<uint8_t> data;
  bool valid = true;
  for (const auto& r : resources) {
    data.insert(data.end(), r.bytes.begin(), r.bytes.end());
    valid = valid && r.valid;
  }
  data.push_back(0x79);  // End Tag: small item 0x0f of 1 byte
  data.push_back(0x00);
  Aml out = buffer(data);
  if (!valid) out.invalidate();
  return out;
}

}  // namespace ioasis::acpi::aml
