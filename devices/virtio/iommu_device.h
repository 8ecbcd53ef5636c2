// The virtio-iommu as a virtio device (virtio 1.2 section 5.13): queue 0 carries requests to the
// engine, queue 1 carries fault events back. The device itself is not behind any IOMMU: its
// rings and request buffers are guest-physical.
//
// Fault events come from other devices' threads into the engine's backlog; whoever wires the
// device sets the engine's fault notifier to schedule notify(kEventQueue) on the control loop,
// where the events are copied into the buffers the driver made available.
#pragma once

#include <memory>
#include <optional>
#include <vector>

#include "devices/virtio/iommu_engine.h"
#include "devices/virtio/queue.h"
#include "devices/virtio/virtio_device.h"

namespace ioasis::devices::virtio_iommu {

class IommuDevice final : public virtio::VirtioDevice {
 public:
  static constexpr uint16_t kRequestQueueSize = 256;
  static constexpr uint16_t kEventQueueSize = 64;
  // Readable bytes taken from one request: the longest body (PROBE, 72 bytes) leaves room for
  // extensions, which the engine ignores, and a guest cannot make the device copy more.
  static constexpr uint32_t kMaxRequestBytes = 512;

  explicit IommuDevice(std::shared_ptr<IommuEngine> engine);

  IommuEngine& engine() { return *engine_; }

  virtio::DeviceType type() const override { return virtio::DeviceType::kIommu; }
  uint64_t features() const override;
  std::vector<uint16_t> queue_max_sizes() const override;
  void read_config(uint64_t offset, std::span<uint8_t> data) override;
  void write_config(uint64_t offset, std::span<const uint8_t> data) override;
  Result<void> activate(const virtio::Activation& activation) override;
  void notify(uint16_t queue) override;
  void reset() override;

 private:
  void process_requests();
  void deliver_faults();
  // Writes `reply` into the chain and returns it to the driver; an error means the ring or the
  // buffer is unreachable and the device has stopped.
  Result<void> complete(virtio::Queue& q, const virtio::DescriptorChain& chain,
                        const std::optional<Reply>& reply);
  void stop(const Error& why);

  std::shared_ptr<IommuEngine> engine_;
  virtio::Activation active_;
  bool running_ = false;
  std::vector<uint8_t> request_;
};

}  // namespace ioasis::devices::virtio_iommu
