// How devices raise interrupts without knowing about KVM. The VM implements these with the
// in-kernel irqchip (KVM_IRQ_LINE), GSI routes and irqfds; tests implement them with recorders.
#pragma once

#include <cstdint>
#include <memory>

#include "base/result.h"

namespace ioasis::devices {

// A legacy level-triggered line on the IOAPIC (the UART's IRQ 4, INTx).
class IrqLine {
 public:
  virtual ~IrqLine() = default;
  virtual void set_level(bool asserted) = 0;
};

struct MsiMessage {
  uint64_t address = 0;
  uint32_t data = 0;
  bool operator==(const MsiMessage&) const = default;
};

// One MSI or MSI-X vector. It owns a GSI route; `eventfd()` is the irqfd that fires it, so a
// peer (a vfio-user server, a vhost backend) can raise the interrupt without passing through us.
class MsiRoute {
 public:
  virtual ~MsiRoute() = default;
  // Points the route at a new message. A masked route keeps its message but delivers nothing.
  virtual Result<void> update(const MsiMessage& msg, bool masked) = 0;
  virtual void trigger() = 0;
  virtual int eventfd() const = 0;
};

// A level-triggered line (PCI INTx) that a peer asserts by signalling `trigger_eventfd()`. When
// the guest acknowledges the interrupt (EOI at the IOAPIC) the line is de-asserted and
// `resample_eventfd()` is signalled: the owner then unmasks the peer, which asserts again if it
// still has an interrupt to give. KVM does this with KVM_IRQFD_FLAG_RESAMPLE.
class ResampledIrqLine {
 public:
  virtual ~ResampledIrqLine() = default;
  virtual int trigger_eventfd() const = 0;
  virtual int resample_eventfd() const = 0;
};

class InterruptManager {
 public:
  virtual ~InterruptManager() = default;
  virtual std::shared_ptr<IrqLine> legacy_line(uint32_t gsi) = 0;
  virtual Result<std::unique_ptr<MsiRoute>> create_msi_route() = 0;
  virtual Result<std::unique_ptr<ResampledIrqLine>> create_resampled_line(uint32_t gsi) {
    (void)gsi;
    return Error(Errc::kUnsupported, "no resampled interrupt lines here");
  }
};

}  // namespace ioasis::devices
