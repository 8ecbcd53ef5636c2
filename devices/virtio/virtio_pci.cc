#include "devices/virtio/virtio_pci.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>

namespace ioasis::devices::virtio {

namespace asio = boost::asio;

namespace {

constexpr uint16_t kVirtioVendorId = 0x1af4;
constexpr uint16_t kModernDeviceIdBase = 0x1040;  // section 4.1.2.1
constexpr uint8_t kCapIdVendor = 0x09;
// Section 4.1.4, cfg_type values.
constexpr uint8_t kCapCommon = 1;
constexpr uint8_t kCapNotify = 2;
constexpr uint8_t kCapIsr = 3;
constexpr uint8_t kCapDevice = 4;
constexpr uint8_t kCapPciCfg = 5;
constexpr uint8_t kBar = 0;
constexpr uint8_t kIsrQueue = 1;
constexpr uint8_t kIsrConfig = 2;

uint32_t class_code(DeviceType type) {
  switch (type) {
    case DeviceType::kBlock:
      return 0x018000;  // mass storage, other
    case DeviceType::kIommu:
      return 0x088000;  // system peripheral, other
  }
  return 0xff0000;
}

}  // namespace

class VirtioPci::Signals final : public DeviceSignals {
 public:
  explicit Signals(VirtioPci& t) : t_(t) {}
  void used_buffers(uint16_t queue) override {
    if (queue >= t_.queues_.size()) return;
    auto need = t_.queues_[queue].needs_interrupt(*t_.options_.dma);
    if (!need) return t_.set_needs_reset(need.error());
    if (*need) t_.signal_vector(t_.queue_vectors_[queue], kIsrQueue);
  }
  void config_changed() override {
    ++t_.config_generation_;
    t_.signal_vector(t_.config_vector_, kIsrConfig);
  }
  void needs_reset(const Error& why) override { t_.set_needs_reset(why); }
  void dma_fault(const iommu::DmaFault& fault) override {
    if (t_.fault_reporter_) {
      t_.fault_reporter_(fault);
    } else {
      spdlog::warn("virtio device type {}: {}", static_cast<int>(t_.device_->type()),
                   fault.to_string());
    }
  }

 private:
  VirtioPci& t_;
};

VirtioPci::VirtioPci(std::shared_ptr<VirtioDevice> device, VirtioPciOptions options)
    : device_(std::move(device)),
      options_(std::move(options)),
      config_(PciIds{.vendor_id = kVirtioVendorId,
                     .device_id = static_cast<uint16_t>(kModernDeviceIdBase +
                                                        static_cast<uint16_t>(device_->type())),
                     .class_code = class_code(device_->type()),
                     .revision_id = 1,
                     .subsystem_vendor_id = kVirtioVendorId,
                     .subsystem_id = 0x40,
                     .interrupt_pin = 0}),
      signals_(std::make_unique<Signals>(*this)) {}

VirtioPci::~VirtioPci() {
  std::lock_guard lock(doorbells_mu_);
  doorbells_.clear();
  watchers_.clear();
}

Result<std::shared_ptr<VirtioPci>> VirtioPci::create(std::shared_ptr<VirtioDevice> device,
                                                     VirtioPciOptions options) {
  if (!device || !options.interrupts || !options.dma) {
    return Error(Errc::kInvalidArgument, "virtio-pci needs a device, interrupts and a DMA view");
  }
  std::shared_ptr<VirtioPci> t(new VirtioPci(std::move(device), std::move(options)));
  IOASIS_TRY(t->init());
  for (uint16_t q = 0; q < t->queues_.size(); ++q) t->watch_queue(q);
  return t;
}

Result<void> VirtioPci::init() {
  for (uint16_t max : device_->queue_max_sizes()) {
    if (max == 0 || max > kMaxQueueSize || (max & (max - 1)) != 0) {
      return Error(Errc::kInvalidArgument, fmt::format("queue size {} is invalid", max));
    }
    queues_.emplace_back(max);
  }
  queue_vectors_.assign(queues_.size(), kNoVector);
  offered_ = device_->features() | kFeatureVersion1;
  if (options_.behind_iommu) offered_ |= kFeatureAccessPlatform;
  IOASIS_TRY(config_.add_bar({.index = kBar, .size = kBarSize, .kind = PciBarKind::kMemory64}));
  IOASIS_TRY(add_capabilities());
  uint16_t vectors = static_cast<uint16_t>(queues_.size() + 1);
  IOASIS_ASSIGN_OR_RETURN(msix_, Msix::create(*options_.interrupts, vectors,
                                              {.table_bar = kBar,
                                               .table_offset = kMsixTableOffset,
                                               .pba_bar = kBar,
                                               .pba_offset = kMsixPbaOffset}));
  IOASIS_TRY(msix_->add_to(config_).ok() ? Result<void>() : Error(Errc::kInternal, "MSI-X cap"));
  for (size_t q = 0; q < queues_.size(); ++q) {
    IOASIS_ASSIGN_OR_RETURN(EventFd ev, EventFd::create(EFD_NONBLOCK | EFD_CLOEXEC));
    queue_events_.push_back(std::move(ev));
  }
  return {};
}

Result<void> VirtioPci::add_capabilities() {
  auto add = [this](uint8_t type, uint64_t offset, uint64_t length) {
    VirtioPciCap cap{};
    cap.cap_vndr = kCapIdVendor;
    cap.cap_len = sizeof(cap);
    cap.cfg_type = type;
    cap.bar = kBar;
    cap.offset = static_cast<uint32_t>(offset);
    cap.length = static_cast<uint32_t>(length);
    return config_.add_capability(std::span(reinterpret_cast<const uint8_t*>(&cap), sizeof(cap)));
  };
  IOASIS_TRY(add(kCapCommon, kCommonOffset, sizeof(VirtioPciCommonCfg)));
  IOASIS_TRY(add(kCapIsr, kIsrOffset, 1));
  IOASIS_TRY(add(kCapDevice, kDeviceCfgOffset, kDeviceCfgSize));
  VirtioPciNotifyCap notify{};
  notify.cap.cap_vndr = kCapIdVendor;
  notify.cap.cap_len = sizeof(notify);
  notify.cap.cfg_type = kCapNotify;
  notify.cap.bar = kBar;
  notify.cap.offset = kNotifyOffset;
  notify.cap.length =
      static_cast<uint32_t>(std::max<size_t>(queues_.size(), 1) * kNotifyMultiplier);
  notify.notify_off_multiplier = kNotifyMultiplier;
  IOASIS_TRY(
      config_.add_capability(std::span(reinterpret_cast<const uint8_t*>(&notify), sizeof(notify))));
  // The driver picks bar, offset and length, then accesses pci_cfg_data.
  VirtioPciCfgCap cfg{};
  cfg.cap.cap_vndr = kCapIdVendor;
  cfg.cap.cap_len = sizeof(cfg);
  cfg.cap.cfg_type = kCapPciCfg;
  std::array<uint8_t, sizeof(cfg)> writable{};
  writable[offsetof(VirtioPciCap, bar)] = 0xff;
  std::fill_n(writable.begin() + offsetof(VirtioPciCap, offset), 8, 0xff);
  std::fill_n(writable.begin() + offsetof(VirtioPciCfgCap, pci_cfg_data), 4, 0xff);
  auto bytes = std::span(reinterpret_cast<const uint8_t*>(&cfg), sizeof(cfg));
  IOASIS_ASSIGN_OR_RETURN(cfg_cap_, config_.add_capability(bytes, writable));
  return {};
}

void VirtioPci::watch_queue(uint16_t queue) {
  if (!options_.io) return;
  std::weak_ptr<VirtioPci> weak = weak_from_this();
  auto watch =
      EventfdWatch::watch(*options_.io, queue_events_[queue].fd(), [weak, queue](uint64_t) {
        if (auto self = weak.lock()) self->process_queue(queue);
      });
  if (!watch.ok()) {
    spdlog::error("virtio-pci: cannot watch queue {}: {}", queue, watch.error().message());
    watchers_.push_back(nullptr);
    return;
  }
  watchers_.push_back(std::move(*watch));
}

void VirtioPci::set_fault_reporter(std::function<void(const iommu::DmaFault&)> reporter) {
  std::lock_guard lock(mu_);
  fault_reporter_ = std::move(reporter);
}

std::optional<VirtioPci::CfgWindow> VirtioPci::cfg_window() const {
  std::lock_guard lock(mu_);
  CfgWindow w{config_.get8(cfg_cap_ + offsetof(VirtioPciCap, bar)),
              config_.get32(cfg_cap_ + offsetof(VirtioPciCap, offset)),
              config_.get32(cfg_cap_ + offsetof(VirtioPciCap, length))};
  // Section 4.1.4.8: 1, 2 or 4 bytes, aligned, inside the BAR.
  if (w.bar != kBar || (w.length != 1 && w.length != 2 && w.length != 4) ||
      w.offset % w.length != 0 || uint64_t{w.offset} + w.length > kBarSize) {
    return std::nullopt;
  }
  return w;
}

uint32_t VirtioPci::config_read(uint16_t offset) {
  if (offset == cfg_cap_ + offsetof(VirtioPciCfgCap, pci_cfg_data)) {
    uint32_t value = 0;
    if (auto w = cfg_window()) {
      bar_read(w->bar, w->offset, std::span(reinterpret_cast<uint8_t*>(&value), w->length));
    }
    return value;
  }
  std::lock_guard lock(mu_);
  return config_.read(offset);
}

void VirtioPci::config_write(uint16_t offset, uint32_t value, uint8_t byte_enables) {
  {
    std::lock_guard lock(mu_);
    config_.write(offset, value, byte_enables);
    msix_->config_written(config_, offset);
  }
  if (offset == cfg_cap_ + offsetof(VirtioPciCfgCap, pci_cfg_data)) {
    if (auto w = cfg_window()) {
      bar_write(w->bar, w->offset, std::span(reinterpret_cast<const uint8_t*>(&value), w->length));
    }
  }
}

std::vector<PciBar> VirtioPci::bars() const { return config_.bars(); }

void VirtioPci::bar_read(uint8_t index, uint64_t offset, std::span<uint8_t> data) {
  std::fill(data.begin(), data.end(), 0);
  if (index != kBar || msix_->bar_read(index, offset, data)) return;
  if (offset >= kCommonOffset && offset < kCommonOffset + sizeof(VirtioPciCommonCfg)) {
    common_read(offset - kCommonOffset, data);
  } else if (offset == kIsrOffset) {
    std::lock_guard lock(mu_);
    data[0] = isr_;
    isr_ = 0;  // section 4.1.4.5: reading the ISR status clears it
  } else if (offset >= kDeviceCfgOffset && offset < kDeviceCfgOffset + kDeviceCfgSize) {
    std::lock_guard lock(mu_);
    device_->read_config(offset - kDeviceCfgOffset, data);
  }
}

void VirtioPci::bar_write(uint8_t index, uint64_t offset, std::span<const uint8_t> data) {
  if (index != kBar || msix_->bar_write(index, offset, data)) return;
  if (offset >= kCommonOffset && offset < kCommonOffset + sizeof(VirtioPciCommonCfg)) {
    common_write(offset - kCommonOffset, data);
  } else if (offset >= kDeviceCfgOffset && offset < kDeviceCfgOffset + kDeviceCfgSize) {
    std::lock_guard lock(mu_);
    device_->write_config(offset - kDeviceCfgOffset, data);
  } else if (offset >= kNotifyOffset &&
             offset < kNotifyOffset + queues_.size() * kNotifyMultiplier) {
    notify(offset - kNotifyOffset);
  }
}

void VirtioPci::notify(uint64_t offset) { kick(static_cast<uint16_t>(offset / kNotifyMultiplier)); }

void VirtioPci::kick(uint16_t queue) {
  if (queue >= queues_.size()) return;
  if (options_.io) {
    (void)queue_events_[queue].signal();
  } else {
    process_queue(queue);
  }
}

void VirtioPci::process_queue(uint16_t queue) {
  std::lock_guard lock(mu_);
  if (!activated_ || (status_ & kStatusNeedsReset) || queue >= queues_.size()) return;
  if (!queues_[queue].ready()) return;
  device_->notify(queue);
}

void VirtioPci::bar_moved(uint8_t index, uint64_t /*old_address*/, uint64_t new_address) {
  if (index != kBar || !options_.ioevents) return;
  std::lock_guard lock(doorbells_mu_);
  doorbells_.clear();
  if (new_address == 0) return;
  for (size_t q = 0; q < queues_.size(); ++q) {
    uint64_t addr = new_address + kNotifyOffset + q * kNotifyMultiplier;
    // Section 4.1.5.2: the driver writes the 16-bit queue index to the queue's notify address.
    auto reg = options_.ioevents->add_mmio(queue_events_[q].fd(), addr, 2);
    if (!reg) {
      spdlog::warn("virtio-pci: no ioeventfd for queue {} ({}); notifications exit to userspace", q,
                   reg.error().message());
      continue;
    }
    doorbells_.push_back(std::move(*reg));
  }
}

void VirtioPci::reset() {
  std::lock_guard lock(mu_);
  reset_device();
  config_.reset();
  msix_->reset();
}

uint8_t VirtioPci::device_status() const {
  std::lock_guard lock(mu_);
  return status_;
}

uint64_t VirtioPci::driver_features() const {
  std::lock_guard lock(mu_);
  return driver_features_;
}

void VirtioPci::signal_vector(uint16_t vector, uint8_t isr_bit) {
  isr_ |= isr_bit;
  if (vector != kNoVector && vector < msix_->vectors()) msix_->trigger(vector);
}

DeviceSignals* VirtioPci::device_signals() { return signals_.get(); }

void VirtioPci::set_needs_reset(const Error& why) {
  spdlog::warn("virtio device type {} needs a reset: {}", static_cast<int>(device_->type()),
               why.message());
  if (status_ & kStatusNeedsReset) return;
  status_ |= kStatusNeedsReset;
  ++config_generation_;
  signal_vector(config_vector_, kIsrConfig);
}

}  // namespace ioasis::devices::virtio
