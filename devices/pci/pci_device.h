// What the PCI root complex needs from a PCI function: its configuration space, the BARs it
// decodes, and accesses to those BARs. Emulated devices build their configuration space with
// PciConfigSpace; passthrough devices forward to the real function.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace ioasis::devices {

enum class PciBarKind { kIo, kMemory32, kMemory64 };

struct PciBar {
  uint8_t index = 0;  // 0-5; a 64-bit BAR also occupies index + 1
  uint64_t size = 0;  // a power of two: at least 4 for I/O, 16 for memory
  PciBarKind kind = PciBarKind::kMemory32;
  bool prefetchable = false;

  bool is_io() const { return kind == PciBarKind::kIo; }
  bool is_64bit() const { return kind == PciBarKind::kMemory64; }
};

class PciDevice {
 public:
  virtual ~PciDevice() = default;

  // Configuration space at a dword-aligned `offset`. `byte_enables` bit i selects byte
  // offset + i of the write, so byte and word accesses keep the neighbouring bytes.
  virtual uint32_t config_read(uint16_t offset) = 0;
  virtual void config_write(uint16_t offset, uint32_t value, uint8_t byte_enables) = 0;
  // 256 for conventional PCI, 4096 for a function with PCIe extended configuration space.
  virtual uint16_t config_size() const { return 256; }

  // The BARs the function implements; fixed for the function's lifetime.
  virtual std::vector<PciBar> bars() const = 0;
  virtual void bar_read(uint8_t index, uint64_t offset, std::span<uint8_t> data) = 0;
  virtual void bar_write(uint8_t index, uint64_t offset, std::span<const uint8_t> data) = 0;
  // The address where the BAR decodes changed: the guest rewrote the BAR or toggled decoding in
  // the command register. An address of 0 means "not decoded".
  virtual void bar_moved(uint8_t index, uint64_t old_address, uint64_t new_address) {
    (void)index, (void)old_address, (void)new_address;
  }
  // Back to the power-on state (a VM reset).
  virtual void reset() {}
};

}  // namespace ioasis::devices
