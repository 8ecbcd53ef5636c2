// The common configuration structure of the virtio-pci transport (virtio 1.2 section 4.1.4.3)
// and the device status machine behind it (section 3.1).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cstring>

#include "devices/virtio/virtio_pci.h"

namespace ioasis::devices::virtio {

namespace {

#define FIELD(name) offsetof(VirtioPciCommonCfg, name), sizeof(VirtioPciCommonCfg::name)

bool touches(uint64_t first, uint64_t end, size_t field, size_t size) {
  return first < field + size && field < end;
}

}  // namespace

VirtioPciCommonCfg VirtioPci::common_snapshot() const {
  VirtioPciCommonCfg c{};
  c.device_feature_select = device_feature_select_;
  c.device_feature = device_feature_select_ < 2
                         ? static_cast<uint32_t>(offered_ >> (32 * device_feature_select_))
                         : 0;
  c.driver_feature_select = driver_feature_select_;
  c.driver_feature = driver_feature_select_ < 2
                         ? static_cast<uint32_t>(driver_features_ >> (32 * driver_feature_select_))
                         : 0;
  c.config_msix_vector = config_vector_;
  c.num_queues = static_cast<uint16_t>(queues_.size());
  c.device_status = status_;
  c.config_generation = config_generation_;
  c.queue_select = queue_select_;
  if (queue_select_ < queues_.size()) {
    const QueueSetup& q = queues_[queue_select_].setup();
    c.queue_size = q.size;
    c.queue_msix_vector = queue_vectors_[queue_select_];
    c.queue_enable = q.enabled;
    c.queue_notify_off = queue_select_;
    c.queue_desc = q.desc.value;
    c.queue_driver = q.avail.value;
    c.queue_device = q.used.value;
  } else {
    // Section 4.1.4.3.2: a queue that does not exist reads as size 0.
    c.queue_msix_vector = kNoVector;
  }
  return c;
}

void VirtioPci::common_read(uint64_t offset, std::span<uint8_t> data) {
  std::lock_guard lock(mu_);
  VirtioPciCommonCfg c = common_snapshot();
  uint64_t n = std::min<uint64_t>(data.size(), sizeof(c) - offset);
  std::memcpy(data.data(), reinterpret_cast<const uint8_t*>(&c) + offset, n);
}

void VirtioPci::common_write(uint64_t offset, std::span<const uint8_t> data) {
  std::lock_guard lock(mu_);
  VirtioPciCommonCfg c = common_snapshot();
  uint64_t n = std::min<uint64_t>(data.size(), sizeof(c) - offset);
  std::memcpy(reinterpret_cast<uint8_t*>(&c) + offset, data.data(), n);
  apply_common(c, offset, offset + n);
}

void VirtioPci::apply_common(const VirtioPciCommonCfg& c, uint64_t first, uint64_t end) {
  if (touches(first, end, FIELD(device_feature_select))) {
    device_feature_select_ = c.device_feature_select;
  }
  if (touches(first, end, FIELD(driver_feature_select))) {
    driver_feature_select_ = c.driver_feature_select;
  }
  // Section 3.1.1: features are fixed once FEATURES_OK is set.
  if (touches(first, end, FIELD(driver_feature)) && !(status_ & kStatusFeaturesOk) &&
      driver_feature_select_ < 2) {
    unsigned shift = 32 * driver_feature_select_;
    driver_features_ =
        (driver_features_ & ~(0xffffffffull << shift)) | (uint64_t{c.driver_feature} << shift);
  }
  if (touches(first, end, FIELD(config_msix_vector))) {
    // Section 4.1.5.1.2: a vector the device cannot use reads back as NO_VECTOR.
    config_vector_ = c.config_msix_vector < msix_->vectors() ? c.config_msix_vector : kNoVector;
  }
  if (touches(first, end, FIELD(queue_select))) queue_select_ = c.queue_select;
  if (queue_select_ < queues_.size()) apply_queue_fields(c, first, end);
  if (touches(first, end, FIELD(device_status))) write_status(c.device_status);
}

void VirtioPci::apply_queue_fields(const VirtioPciCommonCfg& c, uint64_t first, uint64_t end) {
  Queue& queue = queues_[queue_select_];
  QueueSetup& q = queue.setup();
  if (touches(first, end, FIELD(queue_msix_vector))) {
    queue_vectors_[queue_select_] =
        c.queue_msix_vector < msix_->vectors() ? c.queue_msix_vector : kNoVector;
  }
  // Section 4.1.4.3.2: the driver configures a queue only while it is disabled.
  if (q.enabled) return;
  if (touches(first, end, FIELD(queue_size))) q.size = c.queue_size;
  if (touches(first, end, FIELD(queue_desc))) q.desc = Iova(c.queue_desc);
  if (touches(first, end, FIELD(queue_driver))) q.avail = Iova(c.queue_driver);
  if (touches(first, end, FIELD(queue_device))) q.used = Iova(c.queue_device);
  if (touches(first, end, FIELD(queue_enable)) && c.queue_enable == 1) {
    if (auto r = queue.validate_setup(); !r) {
      set_needs_reset(Error(r.error()).context(fmt::format("enabling queue {}", queue_select_)));
      return;
    }
    q.enabled = true;
  }
}

void VirtioPci::write_status(uint8_t status) {
  if (status == 0) return reset_device();
  uint8_t added = status & ~status_;
  // The driver only adds bits (section 2.1.2); NEEDS_RESET is the device's to set.
  uint8_t next = static_cast<uint8_t>(status_ | (status & ~kStatusNeedsReset));
  if ((added & kStatusFeaturesOk) && !accept_features()) next &= ~kStatusFeaturesOk;
  if ((added & kStatusDriverOk) && !(next & kStatusFeaturesOk)) {
    spdlog::warn("virtio device type {}: DRIVER_OK without FEATURES_OK",
                 static_cast<int>(device_->type()));
    next &= ~kStatusDriverOk;
  }
  status_ = next;
  if ((added & kStatusDriverOk) && (status_ & kStatusDriverOk)) activate();
}

bool VirtioPci::accept_features() {
  auto refuse = [this](const char* why) {
    spdlog::warn("virtio device type {}: refusing features {:#x}: {}",
                 static_cast<int>(device_->type()), driver_features_, why);
    return false;
  };
  if (driver_features_ & ~offered_) return refuse("not all of them were offered");
  if (!(driver_features_ & kFeatureVersion1)) return refuse("VERSION_1 is required");
  // Behind the virtio-iommu, a driver that ignores ACCESS_PLATFORM would hand out guest-physical
  // addresses the device cannot reach (section 6.1).
  if (options_.behind_iommu && !(driver_features_ & kFeatureAccessPlatform)) {
    return refuse("ACCESS_PLATFORM is required behind the virtio-iommu");
  }
  return true;
}

void VirtioPci::activate() {
  bool event_idx = driver_features_ & kFeatureRingEventIdx;
  bool indirect = driver_features_ & kFeatureRingIndirectDesc;
  for (Queue& q : queues_) {
    if (q.setup().enabled) q.start(event_idx, indirect);
  }
  Activation a{.features = driver_features_,
               .queues = std::span(queues_),
               .dma = options_.dma.get(),
               .signals = device_signals()};
  if (auto r = device_->activate(a); !r) {
    set_needs_reset(Error(r.error()).context("activating the device"));
    return;
  }
  activated_ = true;
}

void VirtioPci::reset_device() {
  device_->reset();
  for (Queue& q : queues_) q.reset();
  std::fill(queue_vectors_.begin(), queue_vectors_.end(), kNoVector);
  activated_ = false;
  driver_features_ = 0;
  device_feature_select_ = driver_feature_select_ = 0;
  config_vector_ = kNoVector;
  status_ = 0;
  isr_ = 0;
  queue_select_ = 0;
}

#undef FIELD

}  // namespace ioasis::devices::virtio
