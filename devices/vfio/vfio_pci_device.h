// A guest-visible PCI function backed by a VFIO device (vfio-user or kernel VFIO, through
// VfioDeviceTransport). Config space passes through to the device except for the parts the VMM
// must own: the BARs (the guest places them in our address map), the command register (decode
// enables are ours; bus mastering is forwarded), MSI-X message control and the whole MSI
// capability. The MSI-X table and PBA are emulated here, and each MSI or MSI-X vector is an
// MsiRoute whose irqfd the device signals directly, so a completion interrupt never passes
// through this process.
//
// BARs the device lets us mmap go straight into the guest-physical map (KVM memory slots through
// a DeviceMemoryMapper) wherever the BAR decodes, page by page, except the pages holding the
// MSI-X table and PBA, which stay emulated. Everything else is trapped: each access is a region
// read or write on the transport.
//
// While a vector is masked, the device signals an eventfd of ours instead of the irqfd (SET_IRQS
// on that one vector), and a signal there sets the vector's PBA bit; unmasking hands the irqfd
// back and delivers what is pending once. Without a control loop to watch those eventfds the
// device keeps the irqfd and the PBA reads zero.
//
// VFIO's error IRQ, when the device offers it, reports DMA faults to a callback: vfio-user has
// no fault message, and the error IRQ carries neither an address nor a reason.
//
// When the transport fails the function stays in place: reads return all ones, writes are
// dropped, failure() says why, and the rest of the VM carries on.
#pragma once

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "devices/device_memory.h"
#include "devices/interrupt.h"
#include "devices/pci/config_space.h"
#include "devices/pci/msi.h"
#include "devices/pci/msix.h"
#include "devices/pci/pci_device.h"
#include "devices/vfio/vfio_device_transport.h"

namespace ioasis::devices {

class EventfdWatch;

struct VfioPciOptions {
  // The control loop that watches the device's error IRQ and its masked MSI-X vectors. Without
  // one neither is watched.
  boost::asio::io_context* io = nullptr;
  // Runs on the control loop once per DMA fault the device signals on its error IRQ.
  std::function<void()> on_dma_fault;
  // Where mmappable BARs go into the guest map. Without one every BAR access traps.
  DeviceMemoryMapper* mapper = nullptr;
};

class VfioPciDevice final : public PciDevice {
 public:
  // `name` is used in log lines ("vfio-user:/run/dma.sock").
  static Result<std::unique_ptr<VfioPciDevice>> create(std::string name,
                                                       std::shared_ptr<VfioDeviceTransport> device,
                                                       InterruptManager& interrupts,
                                                       VfioPciOptions options = {});
  ~VfioPciDevice() override;

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
  // INTA-INTD as 1-4, or 0 when the function has no interrupt pin.
  uint8_t intx_pin() const { return intx_pin_; }
  // Wires the pin, for a function without MSI-X, to `gsi` as a resampled level line: the device
  // signals the line's trigger eventfd, and each guest EOI unmasks it at the device. The
  // interrupt line register then reads `gsi`, as firmware would have set it.
  Result<void> connect_intx(InterruptManager& interrupts, uint32_t gsi);
  const Msix* msix() const { return msix_.get(); }
  const Msi* msi() const { return msi_.get(); }

 private:
  VfioPciDevice(std::string name, std::shared_ptr<VfioDeviceTransport> device,
                PciConfigSpace config, VfioPciOptions options);
  // Adds the BARs the device's regions describe; `regions` gets each BAR's region info.
  Result<void> setup_bars(std::span<const uint8_t> config,
                          std::map<uint8_t, VfioRegionInfo>* regions);
  Result<void> setup_msix(std::span<const uint8_t> config, InterruptManager& interrupts);
  // mmaps the parts of each mmappable BAR that can go into the guest map.
  Result<void> setup_direct_areas(const std::map<uint8_t, VfioRegionInfo>& regions);
  // Connects the error IRQ to on_dma_fault when the device offers one (vfio_pci_device_irqs.cc).
  Result<void> setup_error_irq();
  // One watched eventfd per vector, for the device to signal while the vector is masked.
  Result<void> setup_masked_vectors();
  // Hands every vector's current eventfd to the device, or with `enable` false disconnects them.
  void connect_msix(bool enable);
  // A vector's mask state changed: point the device at the eventfd that matches it.
  void on_vector_mask_changed(uint16_t vector);
  // The eventfd the device should signal for `vector` now; records the choice.
  int vector_eventfd_locked(uint16_t vector);
  bool emulated(uint16_t offset) const;
  uint32_t device_read32(uint16_t offset);
  void device_write(uint16_t offset, uint32_t value, uint8_t byte_enables);
  void write_msix_control(uint16_t control);
  // Hands the device the irqfds of the MSI vectors the guest enabled (none: MSI off).
  void connect_msi();
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
  std::unique_ptr<Msi> msi_;  // emulated; the device never sees its registers
  std::vector<DirectArea> direct_;
  uint16_t msix_cap_ = 0;
  uint16_t msix_control_ = 0;  // enable and function mask, as the guest wrote them
  std::atomic<bool> failure_logged_{false};

  VfioPciOptions options_;
  std::shared_ptr<EventfdWatch> error_watch_;
  // Which eventfd the device signals per vector, serialized by irq_mu_ because mask changes
  // come from any vCPU.
  std::mutex irq_mu_;
  bool device_msix_on_ = false;
  std::vector<std::shared_ptr<EventfdWatch>> masked_watches_;
  std::vector<bool> device_has_masked_fd_;

  uint8_t intx_pin_ = 0;
  std::atomic<uint8_t> interrupt_line_{0xff};  // 0xff: not connected (x86 convention)
  std::unique_ptr<ResampledIrqLine> intx_line_;
  std::shared_ptr<EventfdWatch> intx_resample_;  // after intx_line_: it watches the line's fd
};

}  // namespace ioasis::devices
