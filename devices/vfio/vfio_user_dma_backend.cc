#include "devices/vfio/vfio_user_dma_backend.h"

#include <fmt/format.h>

#include "base/log.h"

namespace ioasis::devices::vfio_user {

using iommu::DeviceId;
using iommu::DmaMapping;
using iommu::IoasId;

void VfioUserDmaBackend::add_device(DeviceId device, std::shared_ptr<VfioUserClient> client) {
  std::lock_guard lock(mu_);
  devices_[device.value] = Device{std::move(client), std::nullopt};
}

Result<void> VfioUserDmaBackend::map_on(Device& device, const DmaMapping& mapping) {
  if (device.client->failed()) {
    spdlog::warn("vfio-user {}: failed, not mapping {:#x}", device.client->socket_path(),
                 mapping.iova.value);
    return {};
  }
  return device.client->dma_map(mapping.iova, mapping.host, mapping.perm);
}

Result<void> VfioUserDmaBackend::unmap_on(Device& device, Iova iova, uint64_t length) {
  if (device.client->failed()) return {};
  return device.client->dma_unmap(iova, length);
}

Result<void> VfioUserDmaBackend::leave(uint32_t device_id, Device& device) {
  if (!device.ioas) return {};
  Mirror& mirror = mirrors_[*device.ioas];
  Result<void> result;
  for (const auto& [iova, mapping] : mirror.mappings) {
    auto r = unmap_on(device, iova, mapping.host.length);
    if (!r.ok() && result.ok()) result = std::move(r);
  }
  mirror.devices.erase(device_id);
  if (mirror.devices.empty()) mirrors_.erase(*device.ioas);
  device.ioas.reset();
  return result;
}

Result<void> VfioUserDmaBackend::attach(DeviceId id, IoasId ioas) {
  std::lock_guard lock(mu_);
  auto it = devices_.find(id.value);
  if (it == devices_.end()) {
    return Error(Errc::kFailedPrecondition,
                 fmt::format("device {} has no vfio-user server", id.value));
  }
  Device& device = it->second;
  if (device.ioas == ioas.value) return {};
  // The server's DMA_MAP table is one address space: the old one goes before the new one comes.
  IOASIS_TRY(leave(id.value, device));
  Mirror& mirror = mirrors_[ioas.value];
  // The context replays mappings for the first device of this backend only; later devices get
  // the mirror from here.
  for (const auto& [iova, mapping] : mirror.mappings) IOASIS_TRY(map_on(device, mapping));
  mirror.devices.insert(id.value);
  device.ioas = ioas.value;
  return {};
}

Result<void> VfioUserDmaBackend::detach(DeviceId id, IoasId ioas) {
  std::lock_guard lock(mu_);
  auto it = devices_.find(id.value);
  if (it == devices_.end() || it->second.ioas != ioas.value) return {};
  return leave(id.value, it->second);
}

Result<void> VfioUserDmaBackend::map(IoasId ioas, const DmaMapping& mapping) {
  std::lock_guard lock(mu_);
  Mirror& mirror = mirrors_[ioas.value];
  std::vector<uint32_t> done;
  for (uint32_t id : mirror.devices) {
    auto r = map_on(devices_.at(id), mapping);
    if (!r.ok()) {
      // All or nothing: the servers that took the mapping give it back.
      for (uint32_t undo : done)
        (void)unmap_on(devices_.at(undo), mapping.iova, mapping.host.length);
      if (mirror.devices.empty()) mirrors_.erase(ioas.value);
      return std::move(r).error();
    }
    done.push_back(id);
  }
  mirror.mappings[mapping.iova] = mapping;
  return {};
}

Result<void> VfioUserDmaBackend::unmap(IoasId ioas, Iova iova, uint64_t length) {
  std::lock_guard lock(mu_);
  auto m = mirrors_.find(ioas.value);
  if (m == mirrors_.end()) return {};
  Mirror& mirror = m->second;
  bool everything = iova.value == 0 && length == UINT64_MAX;
  uint64_t last =
      everything || !range_fits(iova.value, length) ? UINT64_MAX : iova.value + (length - 1);
  Result<void> result;
  for (auto it = mirror.mappings.lower_bound(iova); it != mirror.mappings.end();) {
    uint64_t end = it->first.value + (it->second.host.length - 1);
    if (it->first.value > last) break;
    if (end > last) {
      ++it;  // the context never cuts a mapping; one that sticks out is not ours to remove
      continue;
    }
    for (uint32_t id : mirror.devices) {
      auto r = unmap_on(devices_.at(id), it->first, it->second.host.length);
      if (!r.ok() && result.ok()) result = std::move(r);
    }
    it = mirror.mappings.erase(it);
  }
  return result;
}

size_t VfioUserDmaBackend::mirrored(IoasId ioas) const {
  std::lock_guard lock(mu_);
  auto m = mirrors_.find(ioas.value);
  return m == mirrors_.end() ? 0 : m->second.mappings.size();
}

}  // namespace ioasis::devices::vfio_user
