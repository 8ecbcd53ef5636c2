// The PCI root complex: bus 0 with the host bridge at 00.0 and up to 31 more slots of up to 8
// functions each. It plays firmware for the BARs (assigns addresses from the windows, enables
// decoding) and keeps the MMIO and PIO buses in step with what the guest programs afterwards:
// a BAR is on the bus exactly while its decode bit is set and it holds a usable address.
//
// Configuration accesses arrive through PciConfigIo (ports 0xcf8/0xcfc) and PciConfigMmio
// (ECAM), both of which end in config_read/config_write here.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "base/result.h"
#include "devices/bus/bus.h"
#include "devices/pci/pci_device.h"
#include "vmm/layout.h"

namespace ioasis::devices {

struct PciAddress {
  uint8_t bus = 0;
  uint8_t device = 0;    // 0-31
  uint8_t function = 0;  // 0-7
  uint8_t devfn() const { return static_cast<uint8_t>(device << 3 | function); }
  // bus << 8 | devfn: the requester ID, and the virtio-iommu endpoint ID of the function.
  uint16_t bdf() const { return static_cast<uint16_t>(bus << 8 | devfn()); }
  std::string to_string() const;
  bool operator==(const PciAddress&) const = default;
};

// Where BARs are placed. The 64-bit window sits above the guest's RAM, so the VM fills it in;
// with no 64-bit window, 64-bit BARs go below 4 GiB.
struct PciWindows {
  uint64_t mmio32_start = layout::kPciMmio32Start;
  uint64_t mmio32_size = layout::kPciMmio32Size;
  uint64_t mmio64_start = 0;
  uint64_t mmio64_size = 0;
  // Above the legacy ports and 0xcf8-0xcff, matching the DSDT's I/O resources.
  uint64_t io_start = 0x1000;
  uint64_t io_size = 0xf000;
};

class PciRoot {
 public:
  static constexpr uint8_t kSlots = 32;
  static constexpr uint8_t kFunctions = 8;

  // The buses must outlive the root.
  PciRoot(Bus& mmio_bus, Bus& pio_bus, const PciWindows& windows);
  ~PciRoot();
  PciRoot(const PciRoot&) = delete;
  PciRoot& operator=(const PciRoot&) = delete;

  // Places a single-function device in the first free slot.
  Result<PciAddress> add_device(std::shared_ptr<PciDevice> device);
  // Places a function at a chosen slot and function number.
  Result<PciAddress> add_function(std::shared_ptr<PciDevice> device, uint8_t slot,
                                  uint8_t function);

  // Configuration access to bus `bus`, function `devfn`, at a dword-aligned register offset.
  // Absent functions read as all ones and ignore writes.
  uint32_t config_read(uint8_t bus, uint8_t devfn, uint16_t offset);
  void config_write(uint8_t bus, uint8_t devfn, uint16_t offset, uint32_t value,
                    uint8_t byte_enables);

  // VM reset: every function back to power-on state with its BARs at their assigned addresses.
  void reset();

 private:
  struct Window {
    uint64_t next = 0;
    uint64_t end = 0;
  };
  struct Function;

  Result<PciAddress> add_function_locked(std::shared_ptr<PciDevice> device, uint8_t slot,
                                         uint8_t function);
  Function* find(uint8_t bus, uint8_t devfn);
  bool slot_has_other_functions(uint8_t devfn) const;
  Result<void> assign_bars(Function& fn);
  // Programs the assigned addresses and turns decoding on, as firmware leaves a device.
  void program_bars(Function& fn);
  // Brings the bus registrations in line with the function's BARs and command register.
  // `sizing` has bit i set when BAR i is being sized and must keep its current registration.
  void sync_bars(Function& fn, uint32_t sizing = 0);
  uint64_t decoded_address(Function& fn, const PciBar& bar, uint16_t command);
  void unmap_all(Function& fn);

  Bus& mmio_bus_;
  Bus& pio_bus_;
  Window mmio32_;
  Window mmio64_;
  Window io_;

  std::mutex mu_;
  std::array<std::unique_ptr<Function>, kSlots * kFunctions> functions_;
};

}  // namespace ioasis::devices
