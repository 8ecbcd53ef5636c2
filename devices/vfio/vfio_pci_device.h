// A guest-visible PCI function backed by a VFIO device (vfio-user or kernel VFIO, through
// VfioDeviceTransport). Config space passes through to the device except for the parts the VMM
// must own: the BARs (the guest places them in our address map), the command register (decode
// enables are ours; bus mastering is forwarded) and MSI-X message control. The MSI-X table and
// PBA are emulated here and each vector is an MsiRoute whose irqfd the device signals directly,
// so a completion interrupt never passes through this process.
//
// BARs are trapped: every access is a region read or write on the transport. (Mapping mmappable
// BARs into the guest with KVM memory slots needs the VM's slot manager and is not done here.)
//
// When the transport fails the function stays in place: reads return all ones, writes are
// dropped, failure() says why, and the rest of the VM carries on.
#pragma once

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "devices/interrupt.h"
#include "devices/pci/config_space.h"
#include "devices/pci/msix.h"
#include "devices/pci/pci_device.h"
#include "devices/vfio/vfio_device_transport.h"

namespace ioasis::devices {

class VfioPciDevice final : public PciDevice {
 public:
  // `name` is used in log lines ("vfio-user:/run/dma.sock").
  static Result<std::unique_ptr<VfioPciDevice>> create(std::string name,
                                                       std::shared_ptr<VfioDeviceTransport> device,
                                                       InterruptManager& interrupts);

  uint32_t config_read(uint16_t offset) override;
  void config_write(uint16_t offset, uint32_t value, uint8_t byte_enables) override;
  std::vector<PciBar> bars() const override { return config_.bars(); }
  void bar_read(uint8_t index, uint64_t offset, std::span<uint8_t> data) override;
  void bar_write(uint8_t index, uint64_t offset, std::span<const uint8_t> data) override;
  void reset() override;

  std::optional<Error> failure() const { return device_->failure(); }
  const Msix* msix() const { return msix_.get(); }

 private:
  VfioPciDevice(std::string name, std::shared_ptr<VfioDeviceTransport> device,
                PciConfigSpace config)
      : name_(std::move(name)), device_(std::move(device)), config_(std::move(config)) {}
  Result<void> setup_bars(std::span<const uint8_t> config);
  Result<void> setup_msix(std::span<const uint8_t> config, InterruptManager& interrupts);
  bool emulated(uint16_t offset) const;
  uint32_t device_read32(uint16_t offset);
  void device_write(uint16_t offset, uint32_t value, uint8_t byte_enables);
  void write_msix_control(uint16_t control);
  // Logs the first failure of the device, once.
  void note_failure(const Error& error);

  std::string name_;
  std::shared_ptr<VfioDeviceTransport> device_;
  PciConfigSpace config_;  // the emulated registers: BARs, ROM BAR, command
  std::unique_ptr<Msix> msix_;
  uint16_t msix_cap_ = 0;
  uint16_t msix_control_ = 0;  // enable and function mask, as the guest wrote them
  std::atomic<bool> failure_logged_{false};
};

}  // namespace ioasis::devices
