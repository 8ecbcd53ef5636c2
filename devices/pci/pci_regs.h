// PCI configuration space layout: the type 0 header and the register bits the emulation uses.
// Source: PCI Local Bus Specification 3.0, section 6.1 and 6.2; PCI Express Base 4.0, 7.5.1.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ioasis::devices::pci {

// PCI LB 3.0 figure 6-1, type 0 configuration space header.
struct [[gnu::packed]] Type0Header {
  uint16_t vendor_id;
  uint16_t device_id;
  uint16_t command;
  uint16_t status;
  uint8_t revision_id;
  uint8_t class_code[3];  // programming interface, subclass, base class
  uint8_t cache_line_size;
  uint8_t latency_timer;
  uint8_t header_type;
  uint8_t bist;
  uint32_t bar[6];
  uint32_t cardbus_cis;
  uint16_t subsystem_vendor_id;
  uint16_t subsystem_id;
  uint32_t expansion_rom;
  uint8_t capabilities_pointer;
  uint8_t reserved[7];
  uint8_t interrupt_line;
  uint8_t interrupt_pin;
  uint8_t min_gnt;
  uint8_t max_lat;
};
static_assert(sizeof(Type0Header) == 64);
static_assert(offsetof(Type0Header, command) == 0x04);
static_assert(offsetof(Type0Header, header_type) == 0x0e);
static_assert(offsetof(Type0Header, bar) == 0x10);
static_assert(offsetof(Type0Header, expansion_rom) == 0x30);
static_assert(offsetof(Type0Header, capabilities_pointer) == 0x34);
static_assert(offsetof(Type0Header, interrupt_line) == 0x3c);

inline constexpr uint16_t kVendorId = offsetof(Type0Header, vendor_id);
inline constexpr uint16_t kCommand = offsetof(Type0Header, command);
inline constexpr uint16_t kStatus = offsetof(Type0Header, status);
inline constexpr uint16_t kRevisionId = offsetof(Type0Header, revision_id);
inline constexpr uint16_t kCacheLineSize = offsetof(Type0Header, cache_line_size);
inline constexpr uint16_t kHeaderType = offsetof(Type0Header, header_type);
inline constexpr uint16_t kBar0 = offsetof(Type0Header, bar);
inline constexpr uint16_t kBarEnd = kBar0 + 6 * 4;
inline constexpr uint16_t kSubsystemVendorId = offsetof(Type0Header, subsystem_vendor_id);
inline constexpr uint16_t kCapabilitiesPointer = offsetof(Type0Header, capabilities_pointer);
inline constexpr uint16_t kInterruptLine = offsetof(Type0Header, interrupt_line);
inline constexpr uint16_t kInterruptPin = offsetof(Type0Header, interrupt_pin);
inline constexpr uint16_t kHeaderSize = sizeof(Type0Header);

inline constexpr uint16_t kConfigSpaceSize = 256;
inline constexpr uint16_t kExtendedConfigSpaceSize = 4096;
inline constexpr int kBarCount = 6;

// Command register (PCI LB 3.0 6.2.2).
inline constexpr uint16_t kCommandIo = 0x0001;
inline constexpr uint16_t kCommandMemory = 0x0002;
inline constexpr uint16_t kCommandBusMaster = 0x0004;
inline constexpr uint16_t kCommandParity = 0x0040;
inline constexpr uint16_t kCommandSerr = 0x0100;
inline constexpr uint16_t kCommandIntxDisable = 0x0400;

// Status register (PCI LB 3.0 6.2.3): the capability list bit and the write-1-to-clear errors.
inline constexpr uint16_t kStatusCapabilityList = 0x0010;
inline constexpr uint16_t kStatusErrorBits = 0xf900;

inline constexpr uint8_t kHeaderTypeMultiFunction = 0x80;

// BAR low bits (PCI LB 3.0 6.2.5.1).
inline constexpr uint32_t kBarIo = 0x1;
inline constexpr uint32_t kBarMem64 = 0x4;
inline constexpr uint32_t kBarPrefetchable = 0x8;
inline constexpr uint32_t kBarIoFlagsMask = 0x3;
inline constexpr uint32_t kBarMemFlagsMask = 0xf;

// First offset for capabilities; they must stay in the device-specific region below 0x100.
inline constexpr uint16_t kCapabilitiesStart = kHeaderSize;

inline constexpr uint8_t kCapIdMsi = 0x05;
inline constexpr uint8_t kCapIdMsix = 0x11;

// MSI capability (PCI Local Bus 3.0 section 6.8.1): message control bits, and where the
// registers after the address sit: one dword further on for a 64-bit capable function.
inline constexpr uint16_t kMsiControlEnable = 0x0001;
inline constexpr uint16_t kMsiControlMultipleCapableShift = 1;  // log2 of vectors, bits 1-3
inline constexpr uint16_t kMsiControlMultipleEnableShift = 4;   // bits 4-6
inline constexpr uint16_t kMsiControl64Bit = 0x0080;
inline constexpr uint16_t kMsiControlPerVectorMask = 0x0100;
inline constexpr uint16_t kMsiAddressLo = 4;
inline constexpr uint16_t kMsiAddressHi = 8;  // 64-bit only
constexpr uint16_t msi_data_offset(bool is64) { return is64 ? 12 : 8; }
constexpr uint16_t msi_mask_offset(bool is64) { return is64 ? 16 : 12; }
constexpr uint16_t msi_capability_size(bool is64, bool maskable) {
  return msi_data_offset(is64) + (maskable ? 12 : 4);
}

}  // namespace ioasis::devices::pci
