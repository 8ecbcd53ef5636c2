#include "vmm/interrupts.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>

namespace ioasis {

namespace {

class KvmIrqLine : public devices::IrqLine {
 public:
  KvmIrqLine(kvm::Vm& vm, uint32_t gsi) : vm_(vm), gsi_(gsi) {}
  void set_level(bool asserted) override {
    if (auto r = vm_.irq_line(gsi_, asserted); !r) {
      spdlog::error("IRQ {}: {}", gsi_, r.error().message());
    }
  }

 private:
  kvm::Vm& vm_;
  uint32_t gsi_;
};

kvm_irq_routing_entry irqchip_route(uint32_t gsi, uint32_t chip, uint32_t pin) {
  kvm_irq_routing_entry e{};
  e.gsi = gsi;
  e.type = KVM_IRQ_ROUTING_IRQCHIP;
  e.u.irqchip.irqchip = chip;
  e.u.irqchip.pin = pin;
  return e;
}

// Both eventfds and the irqfd; the irqfd goes first on destruction.
class KvmResampledLine : public devices::ResampledIrqLine {
 public:
  KvmResampledLine(kvm::Vm& vm, uint32_t gsi, EventFd trigger, EventFd resample)
      : vm_(vm), gsi_(gsi), trigger_(std::move(trigger)), resample_(std::move(resample)) {}
  ~KvmResampledLine() override { (void)vm_.irqfd(trigger_.fd(), gsi_, false); }
  int trigger_eventfd() const override { return trigger_.fd(); }
  int resample_eventfd() const override { return resample_.fd(); }

 private:
  kvm::Vm& vm_;
  uint32_t gsi_;
  EventFd trigger_;
  EventFd resample_;
};

}  // namespace

// One vector: its GSI, the irqfd that fires it, and whether KVM currently listens to that fd.
// While masked the irqfd is detached, so a peer's signal stays pending in the eventfd counter;
// KVM polls the fd when it is attached again and delivers what was pending.
class KvmMsiRoute : public devices::MsiRoute {
 public:
  KvmMsiRoute(KvmInterrupts& owner, uint32_t gsi, EventFd fd)
      : owner_(owner), gsi_(gsi), fd_(std::move(fd)) {}
  ~KvmMsiRoute() override {
    if (attached_) (void)owner_.vm_.irqfd(fd_.fd(), gsi_, false);
    (void)owner_.set_msi(gsi_, std::nullopt);
    std::lock_guard lock(owner_.mu_);
    owner_.free_gsis_.push_back(gsi_);
  }

  Result<void> update(const devices::MsiMessage& msg, bool masked) override {
    if (masked) {
      if (attached_) IOASIS_TRY(owner_.vm_.irqfd(fd_.fd(), gsi_, false));
      attached_ = false;
      return {};
    }
    IOASIS_TRY(owner_.set_msi(gsi_, msg));
    if (!attached_) IOASIS_TRY(owner_.vm_.irqfd(fd_.fd(), gsi_, true));
    attached_ = true;
    return {};
  }
  void trigger() override {
    if (auto r = fd_.signal(); !r) spdlog::error("MSI GSI {}: {}", gsi_, r.error().message());
  }
  int eventfd() const override { return fd_.fd(); }

 private:
  KvmInterrupts& owner_;
  uint32_t gsi_;
  EventFd fd_;
  bool attached_ = false;
};

Result<void> KvmInterrupts::init() {
  std::lock_guard lock(mu_);
  // The routing KVM installs by default: GSIs 0-15 on both PICs and the IOAPIC, 16-23 IOAPIC.
  for (uint32_t gsi = 0; gsi < kIoapicPins; ++gsi) {
    if (gsi < 16)
      legacy_routes_.push_back(
          irqchip_route(gsi, gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE, gsi % 8));
    legacy_routes_.push_back(irqchip_route(gsi, KVM_IRQCHIP_IOAPIC, gsi));
  }
  return commit_locked();
}

std::shared_ptr<devices::IrqLine> KvmInterrupts::legacy_line(uint32_t gsi) {
  return std::make_shared<KvmIrqLine>(vm_, gsi);
}

Result<std::unique_ptr<devices::ResampledIrqLine>> KvmInterrupts::create_resampled_line(
    uint32_t gsi) {
  if (gsi >= kIoapicPins) {
    return Error(Errc::kInvalidArgument, fmt::format("GSI {} is no IOAPIC pin", gsi));
  }
  IOASIS_ASSIGN_OR_RETURN(EventFd trigger, EventFd::create(EFD_NONBLOCK | EFD_CLOEXEC));
  IOASIS_ASSIGN_OR_RETURN(EventFd resample, EventFd::create(EFD_NONBLOCK | EFD_CLOEXEC));
  IOASIS_TRY(vm_.irqfd_resample(trigger.fd(), resample.fd(), gsi));
  return std::unique_ptr<devices::ResampledIrqLine>(
      new KvmResampledLine(vm_, gsi, std::move(trigger), std::move(resample)));
}

Result<uint32_t> KvmInterrupts::allocate_gsi() {
  std::lock_guard lock(mu_);
  if (!free_gsis_.empty()) {
    uint32_t gsi = free_gsis_.back();
    free_gsis_.pop_back();
    return gsi;
  }
  constexpr uint32_t kMaxGsi = 4096;  // KVM_MAX_IRQ_ROUTES
  if (next_gsi_ >= kMaxGsi) return Error(Errc::kResourceExhausted, "all KVM GSI routes are in use");
  return next_gsi_++;
}

Result<std::unique_ptr<devices::MsiRoute>> KvmInterrupts::create_msi_route() {
  IOASIS_ASSIGN_OR_RETURN(uint32_t gsi, allocate_gsi());
  auto fd = EventFd::create(EFD_NONBLOCK);
  if (!fd) {
    std::lock_guard lock(mu_);
    free_gsis_.push_back(gsi);
    return std::move(fd).error();
  }
  return std::unique_ptr<devices::MsiRoute>(new KvmMsiRoute(*this, gsi, std::move(*fd)));
}

Result<void> KvmInterrupts::set_msi(uint32_t gsi, std::optional<devices::MsiMessage> msg) {
  std::lock_guard lock(mu_);
  if (!msg) {
    msi_routes_.erase(gsi);
  } else {
    kvm_irq_routing_entry e{};
    e.gsi = gsi;
    e.type = KVM_IRQ_ROUTING_MSI;
    e.u.msi.address_lo = static_cast<uint32_t>(msg->address);
    e.u.msi.address_hi = static_cast<uint32_t>(msg->address >> 32);
    e.u.msi.data = msg->data;
    msi_routes_[gsi] = e;
  }
  return commit_locked();
}

Result<void> KvmInterrupts::commit_locked() {
  std::vector<kvm_irq_routing_entry> table = legacy_routes_;
  for (const auto& [gsi, e] : msi_routes_) table.push_back(e);
  return vm_.set_gsi_routing(table);
}

}  // namespace ioasis
