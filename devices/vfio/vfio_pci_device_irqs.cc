// VfioPciDevice's interrupts beyond the MSI-X irqfds: the eventfds a masked vector is redirected
// to (which feed the PBA), VFIO's error IRQ and INTx. The device signals eventfds that the control
// loop watches (EventfdWatch).
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include "base/log.h"
#include "devices/eventfd_watch.h"
#include "devices/vfio/vfio_pci_device.h"

namespace ioasis::devices {

namespace {

// Reads and clears a non-blocking eventfd the device may have signalled; 0 when it had not.
uint64_t drain(int eventfd) {
  pollfd p{eventfd, POLLIN, 0};
  if (::poll(&p, 1, 0) != 1 || !(p.revents & POLLIN)) return 0;
  uint64_t count = 0;
  if (::read(eventfd, &count, sizeof(count)) != sizeof(count)) return 0;
  return count;
}

}  // namespace

Result<void> VfioPciDevice::setup_error_irq() {
  if (!options_.io || !options_.on_dma_fault) return {};
  auto info = device_->irq_info(VFIO_PCI_ERR_IRQ_INDEX);
  if (!info.ok() || info->count < 1 || !(info->flags & VFIO_IRQ_INFO_EVENTFD)) {
    spdlog::debug("{}: no error IRQ, DMA faults go unreported", name_);
    return {};
  }
  // The counter adds up signals the loop has not seen yet; each one is a fault. A device that
  // floods faults is capped per wakeup: the virtio-iommu drops past its backlog anyway.
  auto on_fault = options_.on_dma_fault;
  IOASIS_ASSIGN_OR_RETURN(error_watch_,
                          EventfdWatch::start(*options_.io, [on_fault](uint64_t count) {
                            for (uint64_t i = 0; i < std::min<uint64_t>(count, 256); ++i) {
                              on_fault();
                            }
                          }));
  int fd = error_watch_->eventfd();
  IOASIS_TRY(device_->set_irqs(VFIO_PCI_ERR_IRQ_INDEX, 0, std::span(&fd, 1)));
  return {};
}

Result<void> VfioPciDevice::setup_masked_vectors() {
  if (!msix_ || !options_.io) return {};
  for (uint16_t v = 0; v < msix_->vectors(); ++v) {
    // A signal while the vector is masked lands in the PBA; one racing with an unmask is
    // delivered, which is what Msix::trigger decides under its lock.
    IOASIS_ASSIGN_OR_RETURN(
        auto watch, EventfdWatch::start(*options_.io, [this, v](uint64_t) { msix_->trigger(v); }));
    masked_watches_.push_back(std::move(watch));
  }
  device_has_masked_fd_.assign(msix_->vectors(), false);
  msix_->set_mask_observer([this](uint16_t vector) { on_vector_mask_changed(vector); });
  return {};
}

int VfioPciDevice::vector_eventfd_locked(uint16_t vector) {
  bool redirect = !masked_watches_.empty() && msix_->masked(vector);
  if (!masked_watches_.empty()) device_has_masked_fd_[vector] = redirect;
  return redirect ? masked_watches_[vector]->eventfd() : msix_->route(vector).eventfd();
}

void VfioPciDevice::connect_msix(bool enable) {
  std::lock_guard lock(irq_mu_);
  // Each vector's eventfd goes to the device: unmasked, the irqfd, so a completion interrupt
  // never passes through us.
  std::vector<int> eventfds;
  if (enable) {
    for (uint16_t v = 0; v < msix_->vectors(); ++v) eventfds.push_back(vector_eventfd_locked(v));
  }
  auto r = device_->set_irqs(VFIO_PCI_MSIX_IRQ_INDEX, 0, eventfds);
  if (!r.ok()) {
    spdlog::error("{}: {} MSI-X: {}", name_, enable ? "enabling" : "disabling",
                  r.error().message());
  }
  device_msix_on_ = enable && r.ok();
}

void VfioPciDevice::on_vector_mask_changed(uint16_t vector) {
  std::lock_guard lock(irq_mu_);
  if (!device_msix_on_ || masked_watches_.empty()) return;
  bool had_masked_fd = device_has_masked_fd_[vector];
  int fd = vector_eventfd_locked(vector);
  if (device_has_masked_fd_[vector] == had_masked_fd) return;
  if (auto r = device_->set_irqs(VFIO_PCI_MSIX_IRQ_INDEX, vector, std::span(&fd, 1)); !r.ok()) {
    spdlog::error("{}: redirecting MSI-X vector {}: {}", name_, vector, r.error().message());
    device_has_masked_fd_[vector] = had_masked_fd;
    return;
  }
  // A signal that reached the detached irqfd between the mask and the redirect belongs in the
  // PBA too.
  if (device_has_masked_fd_[vector] && drain(msix_->route(vector).eventfd())) {
    msix_->trigger(vector);
  }
}

Result<void> VfioPciDevice::connect_intx(InterruptManager& interrupts, uint32_t gsi) {
  if (msix_) return Error(Errc::kUnsupported, "INTx is only wired for functions without MSI-X");
  if (intx_pin_ == 0) return Error(Errc::kUnsupported, "the function has no interrupt pin");
  IOASIS_ASSIGN_OR_RETURN(vfio_irq_info info, device_->irq_info(VFIO_PCI_INTX_IRQ_INDEX));
  if (info.count < 1 || !(info.flags & VFIO_IRQ_INFO_EVENTFD)) {
    return Error(Errc::kUnsupported, "the device offers no INTx eventfd");
  }
  IOASIS_ASSIGN_OR_RETURN(intx_line_, interrupts.create_resampled_line(gsi));
  int fd = intx_line_->trigger_eventfd();
  IOASIS_TRY(device_->set_irqs(VFIO_PCI_INTX_IRQ_INDEX, 0, std::span(&fd, 1)));
  // VFIO masks INTx each time it fires; the guest's EOI is when it may fire again. A kernel
  // device unmasks itself on the resample eventfd; a vfio-user one is told by us.
  auto direct =
      device_->set_unmask_eventfd(VFIO_PCI_INTX_IRQ_INDEX, intx_line_->resample_eventfd());
  if (!direct.ok() && direct.error().code() != Errc::kUnsupported) return std::move(direct).error();
  if (!direct.ok()) {
    if (!options_.io) return Error(Errc::kUnsupported, "INTx needs a control loop to resample");
    IOASIS_ASSIGN_OR_RETURN(
        intx_resample_,
        EventfdWatch::watch(*options_.io, intx_line_->resample_eventfd(), [this](uint64_t) {
          auto r = device_->unmask_irq(VFIO_PCI_INTX_IRQ_INDEX);
          if (!r.ok()) note_failure(r.error());
        }));
  }
  interrupt_line_ = static_cast<uint8_t>(gsi);
  spdlog::info("{}: INTx pin {} on GSI {}", name_, "ABCD"[intx_pin_ - 1], gsi);
  return {};
}

}  // namespace ioasis::devices
