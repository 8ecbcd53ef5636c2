// The DmaBackend of vfio-user devices: it mirrors each address space to the servers of the
// devices attached to it with DMA_MAP (the memory's fd and offset, so the server maps guest
// memory itself) and DMA_UNMAP. A mapping reaches every server of the address space before
// map() returns, so a guest MAP is visible to the device when the request completes.
//
// It lives in devices/, not iommu/backends/: it drives a VfioUserClient, and iommu/ may not
// depend on devices/ (dependencies point down: devices -> iommu).
//
// A server that has failed is skipped with a warning rather than failing the whole address
// space: the device is dead, and the other devices sharing the space must keep working.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>

#include "devices/vfio/vfio_user_client.h"
#include "iommu/dma_backend.h"

namespace ioasis::devices::vfio_user {

class VfioUserDmaBackend final : public iommu::DmaBackend {
 public:
  explicit VfioUserDmaBackend(iommu::Aperture aperture = {}) : aperture_(aperture) {}

  // Declares the server behind `device`; call before the context attaches it.
  void add_device(iommu::DeviceId device, std::shared_ptr<VfioUserClient> client);

  iommu::Aperture aperture(iommu::DeviceId) const override { return aperture_; }
  Result<void> attach(iommu::DeviceId device, iommu::IoasId ioas) override;
  Result<void> detach(iommu::DeviceId device, iommu::IoasId ioas) override;
  Result<void> map(iommu::IoasId ioas, const iommu::DmaMapping& mapping) override;
  Result<void> unmap(iommu::IoasId ioas, Iova iova, uint64_t length) override;

  // Mappings mirrored for `ioas` (0 when no device of this backend uses it).
  size_t mirrored(iommu::IoasId ioas) const;

 private:
  struct Device {
    std::shared_ptr<VfioUserClient> client;
    std::optional<uint32_t> ioas;
  };
  struct Mirror {
    std::map<Iova, iommu::DmaMapping> mappings;
    std::set<uint32_t> devices;
  };
  Result<void> map_on(Device& device, const iommu::DmaMapping& mapping);
  Result<void> unmap_on(Device& device, Iova iova, uint64_t length);
  // Unmaps the whole mirror of the device's address space from its server and leaves it.
  Result<void> leave(uint32_t device_id, Device& device);

  iommu::Aperture aperture_;
  mutable std::mutex mu_;
  std::map<uint32_t, Device> devices_;
  std::map<uint32_t, Mirror> mirrors_;
};

}  // namespace ioasis::devices::vfio_user
