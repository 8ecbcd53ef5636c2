#include "devices/pci/msix.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "base/log.h"
#include "devices/pci/pci_regs.h"

namespace ioasis::devices {
namespace {

constexpr uint32_t kVectorMasked = 0x1;
constexpr uint32_t kBirMask = 0x7;
constexpr uint16_t kControlOffset = offsetof(MsixCapability, message_control);

bool inside(uint64_t offset, size_t size, uint64_t start, uint64_t len) {
  return offset >= start && offset - start < len && size <= len - (offset - start);
}

}  // namespace

Result<std::unique_ptr<Msix>> Msix::create(InterruptManager& interrupts, uint16_t vectors,
                                           const MsixLayout& layout) {
  if (vectors == 0 || vectors > kMaxVectors) {
    return Error(Errc::kInvalidArgument, fmt::format("MSI-X: {} vectors (1-2048)", vectors));
  }
  if (layout.table_bar >= pci::kBarCount || layout.pba_bar >= pci::kBarCount ||
      layout.table_offset % 8 || layout.pba_offset % 8) {
    return Error(Errc::kInvalidArgument, "MSI-X: table or PBA BAR/offset invalid");
  }
  uint64_t table_end = layout.table_offset + uint64_t{vectors} * sizeof(MsixTableEntry);
  uint64_t pba_end = layout.pba_offset + (vectors + 63u) / 64 * 8;
  if (layout.table_bar == layout.pba_bar && layout.table_offset < pba_end &&
      layout.pba_offset < table_end) {
    return Error(Errc::kInvalidArgument, "MSI-X: table and PBA overlap");
  }
  std::vector<std::unique_ptr<MsiRoute>> routes;
  routes.reserve(vectors);
  for (uint16_t v = 0; v < vectors; ++v) {
    IOASIS_ASSIGN_OR_RETURN(auto route, interrupts.create_msi_route());
    IOASIS_TRY(route->update(MsiMessage{}, true));
    routes.push_back(std::move(route));
  }
  return std::unique_ptr<Msix>(new Msix(std::move(routes), layout));
}

Msix::Msix(std::vector<std::unique_ptr<MsiRoute>> routes, const MsixLayout& layout)
    : layout_(layout),
      routes_(std::move(routes)),
      table_(routes_.size(), MsixTableEntry{0, 0, 0, kVectorMasked}),
      pending_((routes_.size() + 63) / 64),
      pushed_(routes_.size()) {}

std::vector<uint8_t> Msix::capability() const {
  MsixCapability cap{};
  cap.cap_id = pci::kCapIdMsix;
  cap.message_control = static_cast<uint16_t>(vectors() - 1);
  cap.table = layout_.table_offset | layout_.table_bar;
  cap.pba = layout_.pba_offset | layout_.pba_bar;
  std::vector<uint8_t> bytes(sizeof(cap));
  std::memcpy(bytes.data(), &cap, sizeof(cap));
  return bytes;
}

std::vector<uint8_t> Msix::capability_writable_mask() const {
  std::vector<uint8_t> mask(sizeof(MsixCapability), 0);
  mask[kControlOffset + 1] = (kControlEnable | kControlFunctionMask) >> 8;
  return mask;
}

Result<uint16_t> Msix::add_to(PciConfigSpace& config) {
  IOASIS_ASSIGN_OR_RETURN(uint16_t offset,
                          config.add_capability(capability(), capability_writable_mask()));
  std::lock_guard lock(mu_);
  cap_offset_ = offset;
  return offset;
}

void Msix::config_written(const PciConfigSpace& config, uint16_t offset) {
  uint16_t control_at = cap_offset_ + kControlOffset;
  if (cap_offset_ == 0 || offset > control_at || offset + 4u <= control_at) return;
  set_message_control(config.get16(control_at));
}

void Msix::set_message_control(uint16_t control) {
  {
    std::lock_guard lock(mu_);
    uint16_t bits = control & (kControlEnable | kControlFunctionMask);
    if (bits == control_) return;
    control_ = bits;
    for (uint16_t v = 0; v < vectors(); ++v) sync_vector(v);
  }
  notify_mask_changes();
}

bool Msix::bar_read(uint8_t bar, uint64_t offset, std::span<uint8_t> data) {
  if (bar == layout_.table_bar && inside(offset, data.size(), layout_.table_offset, table_size())) {
    std::lock_guard lock(mu_);
    table_access(offset - layout_.table_offset, data, {});
    return true;
  }
  if (bar == layout_.pba_bar && inside(offset, data.size(), layout_.pba_offset, pba_size())) {
    std::lock_guard lock(mu_);
    const auto* bytes = reinterpret_cast<const uint8_t*>(pending_.data());
    std::memcpy(data.data(), bytes + (offset - layout_.pba_offset), data.size());
    return true;
  }
  return false;
}

bool Msix::bar_write(uint8_t bar, uint64_t offset, std::span<const uint8_t> data) {
  if (bar == layout_.table_bar && inside(offset, data.size(), layout_.table_offset, table_size())) {
    {
      std::lock_guard lock(mu_);
      table_access(offset - layout_.table_offset, {}, data);
    }
    notify_mask_changes();
    return true;
  }
  // The PBA is read-only; writes to it are ignored (PCI LB 3.0 6.8.2.10).
  return bar == layout_.pba_bar && inside(offset, data.size(), layout_.pba_offset, pba_size());
}

void Msix::table_access(uint64_t offset, std::span<uint8_t> read, std::span<const uint8_t> write) {
  size_t size = read.empty() ? write.size() : read.size();
  // Software uses aligned dword or qword accesses (PCI LB 3.0 6.8.2); others are dropped.
  if ((size != 4 && size != 8) || offset % size) {
    std::fill(read.begin(), read.end(), 0xff);
    return;
  }
  auto* bytes = reinterpret_cast<uint8_t*>(table_.data());
  if (!read.empty()) {
    std::memcpy(read.data(), bytes + offset, size);
    return;
  }
  std::memcpy(bytes + offset, write.data(), size);
  auto vector = static_cast<uint16_t>(offset / sizeof(MsixTableEntry));
  sync_vector(vector);
}

void Msix::trigger(uint16_t vector) {
  std::lock_guard lock(mu_);
  if (vector >= vectors() || !(control_ & kControlEnable)) return;
  if (vector_masked(vector)) {
    pending_[vector / 64] |= uint64_t{1} << (vector % 64);
    return;
  }
  routes_[vector]->trigger();
}

bool Msix::enabled() const {
  std::lock_guard lock(mu_);
  return control_ & kControlEnable;
}

bool Msix::pending(uint16_t vector) const {
  std::lock_guard lock(mu_);
  return vector < vectors() && (pending_[vector / 64] >> (vector % 64)) & 1;
}

bool Msix::masked(uint16_t vector) const {
  std::lock_guard lock(mu_);
  return vector >= vectors() || vector_masked(vector);
}

void Msix::set_mask_observer(std::function<void(uint16_t)> observer) {
  std::lock_guard lock(mu_);
  mask_observer_ = std::move(observer);
}

void Msix::notify_mask_changes() {
  std::vector<uint16_t> changed;
  std::function<void(uint16_t)> observer;
  {
    std::lock_guard lock(mu_);
    changed.swap(mask_changes_);
    observer = mask_observer_;
  }
  if (!observer) return;
  for (uint16_t v : changed) observer(v);
}

void Msix::reset() {
  {
    std::lock_guard lock(mu_);
    control_ = 0;
    std::fill(table_.begin(), table_.end(), MsixTableEntry{0, 0, 0, kVectorMasked});
    std::fill(pending_.begin(), pending_.end(), 0);
    for (uint16_t v = 0; v < vectors(); ++v) sync_vector(v);
  }
  notify_mask_changes();
}

bool Msix::vector_masked(uint16_t vector) const {
  return !(control_ & kControlEnable) || (control_ & kControlFunctionMask) ||
         (table_[vector].vector_control & kVectorMasked);
}

void Msix::sync_vector(uint16_t vector) {
  const MsixTableEntry& entry = table_[vector];
  Pushed now{MsiMessage{uint64_t{entry.address_hi} << 32 | entry.address_lo, entry.data},
             vector_masked(vector)};
  Pushed& before = pushed_[vector];
  if (now.message == before.message && now.masked == before.masked) return;
  if (auto r = routes_[vector]->update(now.message, now.masked); !r.ok()) {
    spdlog::error("MSI-X vector {}: {}", vector, r.error().message());
    return;
  }
  if (now.masked != before.masked && mask_observer_) mask_changes_.push_back(vector);
  before = now;
  uint64_t bit = uint64_t{1} << (vector % 64);
  if (!now.masked && (pending_[vector / 64] & bit)) {
    pending_[vector / 64] &= ~bit;
    routes_[vector]->trigger();
  }
}

}  // namespace ioasis::devices
