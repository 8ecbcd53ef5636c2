// The modern virtio-pci transport (virtio 1.2 section 4.1): one PCI function per virtio device,
// vendor 0x1af4 and device 0x1040 + type, with the common, notify, ISR and device configuration
// structures and the MSI-X table and PBA in one 64-bit memory BAR.
//
// The transport negotiates features (VERSION_1 always, ACCESS_PLATFORM for a device behind the
// virtio-iommu, which must then be accepted), runs the status machine, owns the queues and the
// device's DmaView, and delivers used-buffer and configuration interrupts through MSI-X.
//
// Queue notifications are queued to the control loop: each queue has an eventfd that a KVM
// ioeventfd signals on the notify address, and a notify write that reaches us as an MMIO exit
// signals the same eventfd. Without a control loop (unit tests) notifications run inline.
#pragma once

#include <boost/asio/io_context.hpp>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "base/fd.h"
#include "devices/eventfd_watch.h"
#include "devices/interrupt.h"
#include "devices/pci/config_space.h"
#include "devices/pci/msix.h"
#include "devices/pci/pci_device.h"
#include "devices/virtio/ioevents.h"
#include "devices/virtio/queue.h"
#include "devices/virtio/virtio_device.h"

namespace ioasis::devices::virtio {

// Virtio 1.2 section 4.1.4, struct virtio_pci_cap.
struct [[gnu::packed]] VirtioPciCap {
  uint8_t cap_vndr;
  uint8_t cap_next;
  uint8_t cap_len;
  uint8_t cfg_type;
  uint8_t bar;
  uint8_t id;
  uint8_t padding[2];
  uint32_t offset;
  uint32_t length;
};
static_assert(sizeof(VirtioPciCap) == 16);
static_assert(offsetof(VirtioPciCap, offset) == 8);

// Section 4.1.4.4, struct virtio_pci_notify_cap.
struct [[gnu::packed]] VirtioPciNotifyCap {
  VirtioPciCap cap;
  uint32_t notify_off_multiplier;
};
static_assert(sizeof(VirtioPciNotifyCap) == 20);

// Section 4.1.4.8, struct virtio_pci_cfg_cap: a window into the BARs through configuration
// space, for drivers that cannot map them.
struct [[gnu::packed]] VirtioPciCfgCap {
  VirtioPciCap cap;
  uint8_t pci_cfg_data[4];
};
static_assert(sizeof(VirtioPciCfgCap) == 20);

// Section 4.1.4.3, struct virtio_pci_common_cfg (without the 1.2 notify-data and queue-reset
// fields, whose features are not offered).
struct [[gnu::packed]] VirtioPciCommonCfg {
  uint32_t device_feature_select;
  uint32_t device_feature;
  uint32_t driver_feature_select;
  uint32_t driver_feature;
  uint16_t config_msix_vector;
  uint16_t num_queues;
  uint8_t device_status;
  uint8_t config_generation;
  uint16_t queue_select;
  uint16_t queue_size;
  uint16_t queue_msix_vector;
  uint16_t queue_enable;
  uint16_t queue_notify_off;
  uint64_t queue_desc;
  uint64_t queue_driver;
  uint64_t queue_device;
};
static_assert(sizeof(VirtioPciCommonCfg) == 56);
static_assert(offsetof(VirtioPciCommonCfg, device_status) == 20);
static_assert(offsetof(VirtioPciCommonCfg, queue_select) == 22);
static_assert(offsetof(VirtioPciCommonCfg, queue_desc) == 32);

// Section 2.1, device status bits.
inline constexpr uint8_t kStatusAcknowledge = 1;
inline constexpr uint8_t kStatusDriver = 2;
inline constexpr uint8_t kStatusDriverOk = 4;
inline constexpr uint8_t kStatusFeaturesOk = 8;
inline constexpr uint8_t kStatusNeedsReset = 0x40;
inline constexpr uint8_t kStatusFailed = 0x80;
inline constexpr uint16_t kNoVector = 0xffff;  // VIRTIO_MSI_NO_VECTOR

struct VirtioPciOptions {
  InterruptManager* interrupts = nullptr;
  // The device's view of memory; the transport owns it.
  std::unique_ptr<iommu::DmaView> dma;
  // The device sits behind the virtio-iommu: offer ACCESS_PLATFORM and require it.
  bool behind_iommu = false;
  // Kernel doorbells for the notify area; null to take every notify as an MMIO exit.
  IoEvents* ioevents = nullptr;
  // The control loop that processes queues; null to process them on the notifying thread.
  boost::asio::io_context* io = nullptr;
};

class VirtioPci final : public PciDevice, public std::enable_shared_from_this<VirtioPci> {
 public:
  // BAR 0 layout.
  static constexpr uint64_t kCommonOffset = 0x0000;
  static constexpr uint64_t kIsrOffset = 0x1000;
  static constexpr uint64_t kDeviceCfgOffset = 0x2000;
  static constexpr uint64_t kDeviceCfgSize = 0x1000;
  static constexpr uint64_t kNotifyOffset = 0x3000;
  static constexpr uint32_t kNotifyMultiplier = 4;
  static constexpr uint64_t kMsixTableOffset = 0x4000;
  static constexpr uint64_t kMsixPbaOffset = 0x6000;
  static constexpr uint64_t kBarSize = 0x8000;

  static Result<std::shared_ptr<VirtioPci>> create(std::shared_ptr<VirtioDevice> device,
                                                   VirtioPciOptions options);
  ~VirtioPci() override;

  // Where DMA faults of this device go once it has an endpoint ID (behind the virtio-iommu).
  void set_fault_reporter(std::function<void(const iommu::DmaFault&)> reporter);

  uint32_t config_read(uint16_t offset) override;
  void config_write(uint16_t offset, uint32_t value, uint8_t byte_enables) override;
  std::vector<PciBar> bars() const override;
  void bar_read(uint8_t index, uint64_t offset, std::span<uint8_t> data) override;
  void bar_write(uint8_t index, uint64_t offset, std::span<const uint8_t> data) override;
  void bar_moved(uint8_t index, uint64_t old_address, uint64_t new_address) override;
  void reset() override;

  // Schedules `queue` for processing on the control loop as if the driver had notified it; safe
  // from any thread and from inside another device's processing (e.g. a fault event for the
  // virtio-iommu's event queue). Without a control loop it processes the queue at once.
  void kick(uint16_t queue);
  // Processes a notification of `queue` as the control loop would.
  void process_queue(uint16_t queue);
  uint8_t device_status() const;
  uint64_t driver_features() const;

 private:
  class Signals;
  VirtioPci(std::shared_ptr<VirtioDevice> device, VirtioPciOptions options);
  Result<void> init();
  Result<void> add_capabilities();
  // The BAR access the PCI configuration access capability selects, when it is valid.
  struct CfgWindow {
    uint8_t bar;
    uint32_t offset;
    uint32_t length;
  };
  std::optional<CfgWindow> cfg_window() const;
  void watch_queue(uint16_t queue);

  VirtioPciCommonCfg common_snapshot() const;
  void common_read(uint64_t offset, std::span<uint8_t> data);
  void common_write(uint64_t offset, std::span<const uint8_t> data);
  void apply_common(const VirtioPciCommonCfg& cfg, uint64_t first, uint64_t end);
  void apply_queue_fields(const VirtioPciCommonCfg& cfg, uint64_t first, uint64_t end);
  void write_status(uint8_t status);
  bool accept_features();
  void activate();
  void reset_device();
  void notify(uint64_t offset);
  // With the lock held: the interrupts behind DeviceSignals.
  void signal_vector(uint16_t vector, uint8_t isr_bit);
  void set_needs_reset(const Error& why);
  DeviceSignals* device_signals();

  std::shared_ptr<VirtioDevice> device_;
  VirtioPciOptions options_;
  PciConfigSpace config_;
  std::unique_ptr<Msix> msix_;
  std::unique_ptr<Signals> signals_;
  uint16_t cfg_cap_ = 0;  // offset of the PCI configuration access capability

  mutable std::mutex mu_;
  uint64_t offered_ = 0;
  uint64_t driver_features_ = 0;
  uint32_t device_feature_select_ = 0;
  uint32_t driver_feature_select_ = 0;
  uint16_t config_vector_ = kNoVector;
  uint8_t status_ = 0;
  uint8_t config_generation_ = 0;
  uint8_t isr_ = 0;
  uint16_t queue_select_ = 0;
  bool activated_ = false;
  std::vector<Queue> queues_;
  std::vector<uint16_t> queue_vectors_;
  std::function<void(const iommu::DmaFault&)> fault_reporter_;

  // Notification plumbing; not guarded by mu_ (set up once, used by the control loop).
  std::vector<EventFd> queue_events_;
  std::vector<std::shared_ptr<EventfdWatch>> watchers_;
  std::vector<std::unique_ptr<IoEventRegistration>> doorbells_;
  std::mutex doorbells_mu_;
};

}  // namespace ioasis::devices::virtio
