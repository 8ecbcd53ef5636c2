// devices::InterruptManager on KVM's in-kernel irqchip: legacy lines through KVM_IRQ_LINE, MSI and
// MSI-X vectors as GSI routes fired by irqfds. KVM takes the routing table whole, so the table is
// kept here and committed on every change.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "devices/interrupt.h"
#include "vmm/kvm/kvm.h"

namespace ioasis {

class KvmInterrupts : public devices::InterruptManager {
 public:
  explicit KvmInterrupts(kvm::Vm& vm) : vm_(vm) {}

  // Installs the default PIC/IOAPIC routes for GSIs 0-23.
  Result<void> init();

  std::shared_ptr<devices::IrqLine> legacy_line(uint32_t gsi) override;
  Result<std::unique_ptr<devices::MsiRoute>> create_msi_route() override;
  // Only for the IOAPIC's pins: KVM resamples lines of the in-kernel irqchip.
  Result<std::unique_ptr<devices::ResampledIrqLine>> create_resampled_line(uint32_t gsi) override;

 private:
  friend class KvmMsiRoute;
  static constexpr uint32_t kIoapicPins = 24;

  Result<uint32_t> allocate_gsi();
  // Sets (or with nullopt removes) the MSI route of `gsi` and commits the table.
  Result<void> set_msi(uint32_t gsi, std::optional<devices::MsiMessage> msg);
  Result<void> commit_locked();

  kvm::Vm& vm_;
  std::mutex mu_;
  std::vector<kvm_irq_routing_entry> legacy_routes_;
  std::map<uint32_t, kvm_irq_routing_entry> msi_routes_;
  std::vector<uint32_t> free_gsis_;
  uint32_t next_gsi_ = kIoapicPins;
};

}  // namespace ioasis
