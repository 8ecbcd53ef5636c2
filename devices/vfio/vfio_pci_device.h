// A guest-visible PCI function backed by a VFIO device (vfio-user or kernel VFIO, through
// VfioDeviceTransport). Config space passes through to the device except for the parts the VMM
// must own: the BARs (the guest places them in our address map), the command register (decode
// enables are ours; bus mastering is forwarded) and MSI-X message control. The MSI-X table and
// PBA are emulated here and each vector is an MsiRoute whose irqfd the device signals directly,
// so a completion interrupt never passes through this process.
//
// BARs the device lets us mmap go straight into the guest-physical map (KVM memory slots through
// a DeviceMemoryMapper) wherever the BAR decodes, page by page, except the pages holding the
// MSI-X table and PBA, which stay emulated. Everything else is trapped: each access is a region
// read or write on the transport.
//
// When the transport fails the function stays in place: reads return all ones, writes are
// dropped, failure() says why, and the rest of the VM carries on.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "devices/device_memory.h"
#include "devices/interrupt.h"
#include "devices/pci/config_space.h"
#include "devices/pci/msix.h"
#include "devices/pci/pci_device.h"
#include "devices/vfio/vfio_device_transport.h"

namespace ioasis::devices {

class VfioPciDevice final : public PciDevice {
 public:
  // `name` is used in log lines ("vfio-user:/run/dma.sock"). Without a `mapper` every BAR
  // access traps.
  static Result<std::unique_ptr<VfioPciDevice>> create(std::string name,
                                                       std::shared_ptr<VfioDeviceTransport> device,
                                                       InterruptManager& interrupts,
                                                       DeviceMemoryMapper* mapper = nullptr);

  uint32_t config_read(uint16_t offset) override;
  void config_write(uint16_t offset, uint32_t value, uint8_t byte_enables) override;
  std::vector<PciBar> bars() const override { return config_.bars(); }
  void bar_read(uint8_t index, uint64_t offset, std::span<uint8_t> data) override;
  void bar_write(uint8_t index, uint64_t offset, std::span<const uint8_t> data) override;
  void bar_moved(uint8_t index, uint64_t old_address, uint64_t new_address) override;
  void reset() override;

  std::optional<Error> failure() const { return device_->failure(); }
  // Bytes of BAR `index` that the guest reaches directly right now.
  uint64_t direct_bytes(uint8_t index) const;
  const Msix* msix() const { return msix_.get(); }

 private:
  VfioPciDevice(std::string name, std::shared_ptr<VfioDeviceTransport> device,
                PciConfigSpace config)
      : name_(std::move(name)), device_(std::move(device)), config_(std::move(config)) {}
  Result<void> setup_bars(std::span<const uint8_t> config);
  Result<void> setup_msix(std::span<const uint8_t> config, InterruptManager& interrupts);
  // mmaps the parts of each mmappable BAR that can go into the guest map.
  Result<void> setup_direct_areas();
  bool emulated(uint16_t offset) const;
  uint32_t device_read32(uint16_t offset);
  void device_write(uint16_t offset, uint32_t value, uint8_t byte_enables);
  void write_msix_control(uint16_t control);
  // Logs the first failure of the device, once.
  void note_failure(const Error& error);

  std::string name_;
  std::shared_ptr<VfioDeviceTransport> device_;
  PciConfigSpace config_;  // the emulated registers: BARs, ROM BAR, command
  // A page-aligned piece of a BAR mmapped from the device, and where it sits in the guest map
  // while the BAR decodes. `guest` is declared last so it leaves the guest map before `host` is
  // unmapped.
  struct DirectArea {
    uint8_t bar;
    uint64_t offset;
    bool writable;
    MappedRegion host;
    std::unique_ptr<GuestMapping> guest;
  };

  std::unique_ptr<Msix> msix_;
  DeviceMemoryMapper* mapper_ = nullptr;
  std::vector<DirectArea> direct_;
  uint16_t msix_cap_ = 0;
  uint16_t msix_control_ = 0;  // enable and function mask, as the guest wrote them
  std::atomic<bool> failure_logged_{false};
};

}  // namespace ioasis::devices
