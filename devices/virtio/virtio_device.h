// The transport-independent side of a virtio device (virtio 1.2 section 2): what it offers, its
// configuration space, and its queue processing once the driver has set it up. A transport
// (virtio_pci.h) owns the queues, negotiates features, runs the status machine and delivers
// interrupts; the device only sees validated queues and the negotiated features.
//
// Threading: every call comes from the transport with its lock held, so a device needs no lock
// of its own for state shared between notify() and the configuration accessors.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "base/result.h"
#include "iommu/dma_view.h"

namespace ioasis::devices::virtio {

class Queue;

// Virtio 1.2 section 5: device IDs.
enum class DeviceType : uint16_t {
  kBlock = 2,
  kIommu = 23,
};

// Virtio 1.2 section 6: reserved (transport and ring) feature bits.
inline constexpr uint64_t kFeatureRingIndirectDesc = 1ull << 28;
inline constexpr uint64_t kFeatureRingEventIdx = 1ull << 29;
inline constexpr uint64_t kFeatureVersion1 = 1ull << 32;
inline constexpr uint64_t kFeatureAccessPlatform = 1ull << 33;

// What a device may do back to the driver while it runs. Implemented by the transport.
class DeviceSignals {
 public:
  virtual ~DeviceSignals() = default;
  // The device put buffers in the used ring of `queue`: interrupts the driver unless the ring's
  // suppression (VIRTQ_AVAIL_F_NO_INTERRUPT or EVENT_IDX used_event) says not to.
  virtual void used_buffers(uint16_t queue) = 0;
  // The device configuration changed (virtio 1.2 section 2.5.2).
  virtual void config_changed() = 0;
  // The device met an error it cannot recover from (a malformed descriptor chain, a ring it
  // cannot reach): sets DEVICE_NEEDS_RESET and raises a configuration interrupt (section 2.1.2).
  // The device must not touch its queues again until reset().
  virtual void needs_reset(const Error& why) = 0;
  // A DMA of this device failed to translate through its address space. Behind the
  // virtio-iommu this becomes a fault event for the device's endpoint; otherwise it is logged.
  virtual void dma_fault(const iommu::DmaFault& fault) = 0;
};

// Everything a device gets when the driver sets DRIVER_OK.
struct Activation {
  uint64_t features = 0;  // negotiated: a subset of VirtioDevice::features()
  // One per queue the device declared, in index order. A queue the driver did not enable has
  // ready() == false. The queues stay valid until reset().
  std::span<Queue> queues;
  // The device's view of memory: rings and buffers are IOVAs translated through it. Owned by
  // the transport; used only from the control loop.
  iommu::DmaView* dma = nullptr;
  DeviceSignals* signals = nullptr;
};

class VirtioDevice {
 public:
  virtual ~VirtioDevice() = default;

  virtual DeviceType type() const = 0;
  // Device-specific and ring feature bits the device offers. The transport adds VERSION_1, and
  // ACCESS_PLATFORM when the device sits behind the virtio-iommu.
  virtual uint64_t features() const = 0;
  // The largest size of each queue; the number of entries is the number of queues.
  virtual std::vector<uint16_t> queue_max_sizes() const = 0;

  // Device configuration space (the structure of the device's section in the spec). Reads past
  // its end return zeros; writes to read-only fields are ignored.
  virtual void read_config(uint64_t offset, std::span<uint8_t> data) = 0;
  virtual void write_config(uint64_t offset, std::span<const uint8_t> data) = 0;

  // The driver set DRIVER_OK. An error puts the device in NEEDS_RESET.
  virtual Result<void> activate(const Activation& activation) = 0;
  // The driver notified `queue` (only after a successful activate()).
  virtual void notify(uint16_t queue) = 0;
  // Back to the state before activate(): the driver wrote 0 to device_status, or the VM reset.
  // The device forgets the queues and any request in flight.
  virtual void reset() = 0;
};

}  // namespace ioasis::devices::virtio
