#include "devices/virtio/iommu_device.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

namespace ioasis::devices::virtio_iommu {

IommuDevice::IommuDevice(std::shared_ptr<IommuEngine> engine) : engine_(std::move(engine)) {}

uint64_t IommuDevice::features() const {
  // The transport adds VERSION_1 itself.
  return engine_->device_features() & ~kFVersion1;
}

std::vector<uint16_t> IommuDevice::queue_max_sizes() const {
  return {kRequestQueueSize, kEventQueueSize};
}

void IommuDevice::read_config(uint64_t offset, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), 0);
  Config config = engine_->config();
  if (offset >= sizeof(config)) return;
  uint64_t n = std::min<uint64_t>(data.size(), sizeof(config) - offset);
  std::memcpy(data.data(), reinterpret_cast<const uint8_t*>(&config) + offset, n);
}

void IommuDevice::write_config(uint64_t offset, std::span<const uint8_t> data) {
  // `bypass` is the only field the driver may write (5.13.4); the rest are read-only.
  constexpr uint64_t kBypass = offsetof(Config, bypass);
  if (offset > kBypass || kBypass - offset >= data.size()) return;
  engine_->write_bypass(data[kBypass - offset]);
}

Result<void> IommuDevice::activate(const virtio::Activation& activation) {
  if (activation.queues.size() != 2 || !activation.dma || !activation.signals) {
    return Error(Errc::kInvalidArgument, "virtio-iommu takes a request and an event queue");
  }
  active_ = activation;
  running_ = true;
  engine_->set_driver_features(activation.features);
  // Faults that arrived before the driver was ready wait in the backlog until buffers come.
  deliver_faults();
  return {};
}

void IommuDevice::reset() {
  running_ = false;
  active_ = virtio::Activation{};
  engine_->reset();
}

void IommuDevice::notify(uint16_t queue) {
  if (!running_) return;
  if (queue == kRequestQueue) process_requests();
  if (queue == kEventQueue) deliver_faults();
}

void IommuDevice::stop(const Error& why) {
  spdlog::warn("virtio-iommu: stopping: {}", why.message());
  active_.signals->needs_reset(why);
  running_ = false;
}

void IommuDevice::process_requests() {
  virtio::Queue& q = active_.queues[kRequestQueue];
  if (!q.ready()) return;
  bool used = false;
  while (running_) {
    auto next = q.pop(*active_.dma);
    if (!next.ok()) {
      stop(next.error());
      break;
    }
    if (!next->has_value()) break;
    const virtio::DescriptorChain& chain = **next;
    request_.resize(std::min<uint32_t>(chain.readable_len, kMaxRequestBytes));
    virtio::ChainReader reader(chain, *active_.dma);
    std::optional<Reply> reply;
    if (reader.read(request_.data(), request_.size()).ok()) {
      reply = engine_->handle(request_, chain.writable_len);
    } else {
      // Unreadable request bytes: nothing to act on, so the buffer goes back unwritten.
      spdlog::warn("virtio-iommu: request buffer unreadable");
    }
    if (auto r = complete(q, chain, reply); !r.ok()) {
      stop(r.error());
      break;
    }
    used = true;
  }
  if (used) active_.signals->used_buffers(kRequestQueue);
}

Result<void> IommuDevice::complete(virtio::Queue& q, const virtio::DescriptorChain& chain,
                                   const std::optional<Reply>& reply) {
  uint32_t written = 0;
  if (reply) {
    virtio::ChainWriter writer(chain, *active_.dma);
    IOASIS_TRY(writer.skip(reply->offset));
    IOASIS_TRY(writer.write(reply->bytes.data(), reply->bytes.size()));
    written = static_cast<uint32_t>(reply->used_length());
  }
  return q.add_used(*active_.dma, chain.head, written);
}

void IommuDevice::deliver_faults() {
  virtio::Queue& q = active_.queues[kEventQueue];
  if (!running_ || !q.ready()) return;
  bool used = false;
  while (running_ && engine_->has_faults()) {
    auto next = q.pop(*active_.dma);
    if (!next.ok()) {
      stop(next.error());
      break;
    }
    if (!next->has_value()) break;  // the events wait for the driver's next buffers
    const virtio::DescriptorChain& chain = **next;
    uint32_t written = 0;
    // A buffer too small for a report is not split across buffers (5.13.6.9): it goes back
    // empty and the event waits for the next one.
    if (chain.writable_len >= sizeof(FaultEvent)) {
      auto event = engine_->next_fault();
      virtio::ChainWriter writer(chain, *active_.dma);
      if (event && writer.write_obj(*event).ok()) written = sizeof(FaultEvent);
    }
    if (auto r = q.add_used(*active_.dma, chain.head, written); !r.ok()) {
      stop(r.error());
      break;
    }
    used = true;
  }
  if (used) active_.signals->used_buffers(kEventQueue);
}

}  // namespace ioasis::devices::virtio_iommu
