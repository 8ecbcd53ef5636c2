#include "devices/bus/bus.h"

#include <fmt/format.h>

#include <mutex>

namespace ioasis::devices {

Result<void> Bus::insert(std::shared_ptr<BusDevice> device, uint64_t base, uint64_t len) {
  if (len == 0 || !range_fits(base, len)) {
    return Error(Errc::kInvalidArgument,
                 fmt::format("{} bus: bad range {:#x}+{:#x}", name_, base, len));
  }
  std::unique_lock lock(mu_);
  auto next = ranges_.lower_bound(base);
  if (next != ranges_.end() && next->first <= base + (len - 1)) {
    return Error(Errc::kAlreadyExists, fmt::format("{} bus: {:#x}+{:#x} overlaps device at {:#x}",
                                                   name_, base, len, next->first));
  }
  if (next != ranges_.begin()) {
    auto prev = std::prev(next);
    if (prev->first + (prev->second.len - 1) >= base) {
      return Error(Errc::kAlreadyExists, fmt::format("{} bus: {:#x}+{:#x} overlaps device at {:#x}",
                                                     name_, base, len, prev->first));
    }
  }
  ranges_.emplace(base, Range{len, std::move(device)});
  return {};
}

Result<void> Bus::remove(uint64_t base) {
  std::unique_lock lock(mu_);
  if (ranges_.erase(base) == 0) {
    return Error(Errc::kNotFound, fmt::format("{} bus: no device at {:#x}", name_, base));
  }
  return {};
}

std::pair<std::shared_ptr<BusDevice>, uint64_t> Bus::find(uint64_t addr) const {
  std::shared_lock lock(mu_);
  auto it = ranges_.upper_bound(addr);
  if (it == ranges_.begin()) return {nullptr, 0};
  --it;
  uint64_t offset = addr - it->first;
  if (offset >= it->second.len) return {nullptr, 0};
  return {it->second.device, offset};
}

bool Bus::read(uint64_t addr, std::span<uint8_t> data) const {
  auto [device, offset] = find(addr);
  if (!device) return false;
  device->read(offset, data);
  return true;
}

bool Bus::write(uint64_t addr, std::span<const uint8_t> data) const {
  auto [device, offset] = find(addr);
  if (!device) return false;
  device->write(offset, data);
  return true;
}

}  // namespace ioasis::devices
