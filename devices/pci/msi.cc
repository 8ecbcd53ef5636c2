#include "devices/pci/msi.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

#include "devices/pci/pci_regs.h"

namespace ioasis::devices {

using namespace pci;

Result<std::unique_ptr<Msi>> Msi::create(InterruptManager& interrupts, uint16_t offset,
                                         uint16_t control) {
  // Multiple Message Capable is log2 of the vector count; 6 and 7 are reserved.
  uint16_t log2 = std::min<uint16_t>(control >> kMsiControlMultipleCapableShift & 7, 5);
  std::vector<std::unique_ptr<MsiRoute>> routes;
  for (uint16_t i = 0; i < (1u << log2); ++i) {
    IOASIS_ASSIGN_OR_RETURN(auto route, interrupts.create_msi_route());
    routes.push_back(std::move(route));
  }
  return std::unique_ptr<Msi>(new Msi(std::move(routes), offset, control));
}

Msi::Msi(std::vector<std::unique_ptr<MsiRoute>> routes, uint16_t offset, uint16_t control)
    : routes_(std::move(routes)),
      offset_(offset),
      is64_(control & kMsiControl64Bit),
      maskable_(control & kMsiControlPerVectorMask) {
  regs_.assign(size(), 0);
  writable_.assign(size(), 0);
  // Message control keeps the device's layout bits; enable and multiple message enable are ours.
  uint16_t layout = control & (7u << kMsiControlMultipleCapableShift | kMsiControl64Bit |
                               kMsiControlPerVectorMask);
  std::memcpy(&regs_[2], &layout, 2);
  writable_[2] = kMsiControlEnable | 7u << kMsiControlMultipleEnableShift;
  writable_[kMsiAddressLo] = 0xfc;  // dword aligned
  std::fill_n(&writable_[kMsiAddressLo + 1], 3, 0xff);
  if (is64_) std::fill_n(&writable_[kMsiAddressHi], 4, 0xff);
  std::fill_n(&writable_[msi_data_offset(is64_)], 2, 0xff);
  if (maskable_) {
    uint32_t bits = routes_.size() == 32 ? ~0u : (1u << routes_.size()) - 1;
    std::memcpy(&writable_[msi_mask_offset(is64_)], &bits, 4);
  }
  push_locked();
}

uint16_t Msi::size() const { return msi_capability_size(is64_, maskable_); }

uint32_t Msi::read(uint16_t offset, uint32_t header) const {
  std::lock_guard lock(mu_);
  uint32_t v = 0;
  std::memcpy(&v, &regs_[offset - offset_], 4);
  if (offset == offset_) v = (v & 0xffff0000) | (header & 0xffff);
  return v;  // pending bits read 0: nothing is held back here
}

bool Msi::write(uint16_t offset, uint32_t value, uint8_t byte_enables) {
  std::lock_guard lock(mu_);
  uint16_t before = enabled_vectors_locked();
  for (unsigned lane = 0; lane < 4; ++lane) {
    if (!(byte_enables & (1u << lane))) continue;
    size_t at = offset - offset_ + lane;
    auto byte = static_cast<uint8_t>(value >> (8 * lane));
    regs_[at] = static_cast<uint8_t>((regs_[at] & ~writable_[at]) | (byte & writable_[at]));
  }
  push_locked();
  return enabled_vectors_locked() != before;
}

uint16_t Msi::enabled_vectors_locked() const {
  uint16_t control;
  std::memcpy(&control, &regs_[2], 2);
  if (!(control & kMsiControlEnable)) return 0;
  // Enabling more than the device can signal gets what it can signal.
  unsigned log2 = control >> kMsiControlMultipleEnableShift & 7;
  return static_cast<uint16_t>(std::min<size_t>(size_t{1} << std::min(log2, 5u), routes_.size()));
}

// Vector i sends the guest's data with its low log2(n) bits replaced by i.
void Msi::push_locked() {
  uint16_t n = enabled_vectors_locked();
  uint32_t lo = 0, hi = 0, mask = 0;
  uint16_t data = 0;
  std::memcpy(&lo, &regs_[kMsiAddressLo], 4);
  if (is64_) std::memcpy(&hi, &regs_[kMsiAddressHi], 4);
  std::memcpy(&data, &regs_[msi_data_offset(is64_)], 2);
  if (maskable_) std::memcpy(&mask, &regs_[msi_mask_offset(is64_)], 4);
  for (uint16_t i = 0; i < routes_.size(); ++i) {
    uint32_t vector_data = n ? (data & ~(n - 1u)) | i : data;
    MsiMessage msg{uint64_t{hi} << 32 | lo, vector_data};
    bool masked = i >= n || (mask >> i & 1);
    if (auto r = routes_[i]->update(msg, masked); !r.ok()) {
      spdlog::warn("MSI vector {}: {}", i, r.error().message());
    }
  }
}

std::vector<int> Msi::enabled_eventfds() const {
  std::lock_guard lock(mu_);
  std::vector<int> fds;
  for (uint16_t i = 0; i < enabled_vectors_locked(); ++i) fds.push_back(routes_[i]->eventfd());
  return fds;
}

void Msi::reset() {
  std::lock_guard lock(mu_);
  for (size_t at = 0; at < regs_.size(); ++at) regs_[at] &= static_cast<uint8_t>(~writable_[at]);
  push_locked();
}

}  // namespace ioasis::devices
