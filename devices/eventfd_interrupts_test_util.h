// Interrupts for device tests without KVM: MSI routes and resampled lines backed by real
// eventfds, which a device (or a peer process) signals as it would KVM's irqfds.
#pragma once

#include <sys/eventfd.h>

#include <memory>
#include <vector>

#include "base/fd.h"
#include "devices/interrupt.h"

namespace ioasis::devices::testing {

// A route whose irqfd is a plain eventfd; it records the message and mask it was given.
class EventFdRoute : public MsiRoute {
 public:
  EventFdRoute() : fd_(std::move(*EventFd::create(EFD_NONBLOCK))) {}
  Result<void> update(const MsiMessage& msg, bool masked) override {
    message = msg;
    this->masked = masked;
    return {};
  }
  void trigger() override { (void)fd_.signal(); }
  int eventfd() const override { return fd_.fd(); }

  MsiMessage message;
  bool masked = true;

 private:
  EventFd fd_;
};

// KVM's resampled irqfd without KVM: the test reads the trigger and signals the resample.
class EventFdLine : public ResampledIrqLine {
 public:
  explicit EventFdLine(uint32_t gsi) : gsi(gsi) {}
  int trigger_eventfd() const override { return trigger.fd(); }
  int resample_eventfd() const override { return resample.fd(); }
  uint32_t gsi;
  EventFd trigger = std::move(*EventFd::create(EFD_NONBLOCK));
  EventFd resample = std::move(*EventFd::create(EFD_NONBLOCK));
};

class Interrupts : public InterruptManager {
 public:
  std::shared_ptr<IrqLine> legacy_line(uint32_t) override { return nullptr; }
  Result<std::unique_ptr<ResampledIrqLine>> create_resampled_line(uint32_t gsi) override {
    auto line = std::make_unique<EventFdLine>(gsi);
    lines.push_back(line.get());
    return std::unique_ptr<ResampledIrqLine>(std::move(line));
  }
  std::vector<EventFdLine*> lines;
  Result<std::unique_ptr<MsiRoute>> create_msi_route() override {
    auto r = std::make_unique<EventFdRoute>();
    routes.push_back(r.get());
    return std::unique_ptr<MsiRoute>(std::move(r));
  }
  std::vector<EventFdRoute*> routes;
};

}  // namespace ioasis::devices::testing
