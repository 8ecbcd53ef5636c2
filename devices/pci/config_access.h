// The two ways a guest reaches configuration space on bus 0 and beyond:
// - PciConfigIo: configuration mechanism #1 (PCI LB 3.0 3.2.2.3.2), an address register at port
//   0xcf8 and a data window at 0xcfc-0xcff; register it on the PIO bus at 0xcf8 for 8 ports.
// - PciConfigMmio: ECAM (PCIe Base 4.0 7.2.2), 4 KiB of registers per function, 1 MiB per bus;
//   register it on the MMIO bus at layout::kPciEcamStart for size() bytes.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>

#include "devices/bus/bus.h"
#include "devices/pci/pci_root.h"

namespace ioasis::devices {

class PciConfigIo : public BusDevice {
 public:
  static constexpr uint64_t kPortCount = 8;

  // 0xcf9 shares the address register's dword but is the chipset's reset control register, so
  // byte accesses to it go to `reset_control` (at its offset 0) when one is given.
  explicit PciConfigIo(std::shared_ptr<PciRoot> root,
                       std::shared_ptr<BusDevice> reset_control = nullptr)
      : root_(std::move(root)), reset_control_(std::move(reset_control)) {}

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

 private:
  bool forwards_to_reset_control(uint64_t offset, size_t size) const;

  std::shared_ptr<PciRoot> root_;
  std::shared_ptr<BusDevice> reset_control_;
  std::mutex mu_;
  uint32_t address_ = 0;
};

class PciConfigMmio : public BusDevice {
 public:
  static constexpr uint64_t kBusSize = 1 << 20;

  // Covers buses 0 to bus_count - 1; only bus 0 has functions.
  PciConfigMmio(std::shared_ptr<PciRoot> root, uint16_t bus_count)
      : root_(std::move(root)), bus_count_(bus_count) {}

  uint64_t size() const { return uint64_t{bus_count_} * kBusSize; }

  void read(uint64_t offset, std::span<uint8_t> data) override;
  void write(uint64_t offset, std::span<const uint8_t> data) override;

 private:
  std::shared_ptr<PciRoot> root_;
  uint16_t bus_count_;
};

}  // namespace ioasis::devices
