// The configuration space of an emulated PCI function: a type 0 header whose registers obey
// per-byte masks (read-only, writable, write-1-to-clear), BAR registers that answer the
// all-ones sizing protocol, and a capability list built by appending capabilities.
//
// Device code sets up the space (add_bar, add_capability, set_*) and forwards the guest's
// config_read/config_write to read()/write(); the masks keep the guest within the rules.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/result.h"
#include "devices/pci/pci_device.h"
#include "devices/pci/pci_regs.h"

namespace ioasis::devices {

struct PciIds {
  uint16_t vendor_id = 0;
  uint16_t device_id = 0;
  uint32_t class_code = 0;  // base class << 16 | subclass << 8 | programming interface
  uint8_t revision_id = 0;
  uint16_t subsystem_vendor_id = 0;
  uint16_t subsystem_id = 0;
  uint8_t interrupt_pin = 0;  // 0: none, 1-4: INTA#-INTD#
};

class PciConfigSpace {
 public:
  explicit PciConfigSpace(const PciIds& ids, uint16_t size = pci::kConfigSpaceSize);

  uint16_t size() const { return static_cast<uint16_t>(bytes_.size()); }

  // Guest accesses: `offset` is dword-aligned; out-of-range reads return all ones.
  uint32_t read(uint16_t offset) const;
  void write(uint16_t offset, uint32_t value, uint8_t byte_enables);

  // Declares a BAR: its low bits describe the kind, and the bits below its size read as zero.
  Result<void> add_bar(const PciBar& bar);
  const std::vector<PciBar>& bars() const { return bars_; }
  // The address the guest programmed (type bits stripped), whether or not decoding is on.
  uint64_t bar_address(uint8_t index) const;
  // Sets a BAR's address as firmware would (no masks, no sizing).
  void set_bar_address(uint8_t index, uint64_t address);

  // Appends a capability (bytes[0] is its ID; bytes[1], the next pointer, is filled in here).
  // `writable` and `write_one_to_clear`, when given, are per-byte masks over `bytes`.
  // Returns the capability's offset.
  Result<uint16_t> add_capability(std::span<const uint8_t> bytes,
                                  std::span<const uint8_t> writable = {},
                                  std::span<const uint8_t> write_one_to_clear = {});

  uint16_t command() const { return get16(pci::kCommand); }
  bool io_enabled() const { return command() & pci::kCommandIo; }
  bool memory_enabled() const { return command() & pci::kCommandMemory; }
  bool bus_master_enabled() const { return command() & pci::kCommandBusMaster; }

  // Device-side access: ignores the masks and is not undone by reset().
  uint8_t get8(uint16_t offset) const { return bytes_[offset]; }
  uint16_t get16(uint16_t offset) const;
  uint32_t get32(uint16_t offset) const;
  void set8(uint16_t offset, uint8_t value) { bytes_[offset] = value; }
  void set16(uint16_t offset, uint16_t value);
  void set32(uint16_t offset, uint32_t value);

  // Restores the power-on contents: IDs, BAR types, capabilities as added; command cleared.
  void reset();

 private:
  void set_initial(uint16_t offset, std::span<const uint8_t> bytes, std::span<const uint8_t> wmask,
                   std::span<const uint8_t> w1c);
  void set_initial32(uint16_t offset, uint32_t value, uint32_t wmask);

  std::vector<uint8_t> bytes_;
  std::vector<uint8_t> initial_;
  std::vector<uint8_t> writable_;
  std::vector<uint8_t> write_one_to_clear_;
  std::vector<PciBar> bars_;
  uint16_t next_capability_ = pci::kCapabilitiesStart;
  uint16_t last_capability_ = 0;
};

}  // namespace ioasis::devices
