// DMA through legacy VFIO: a container (/dev/vfio/vfio) with the type1 IOMMU per address space,
// VFIO groups (/dev/vfio/N) set into the container of the address space their devices use. The
// kernel pins per container, so the same page in two containers is pinned twice there; our own
// accounting still counts it once.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "iommu/backends/kernel_io.h"
#include "iommu/dma_backend.h"

namespace ioasis::iommu {

class VfioType1Backend final : public DmaBackend {
 public:
  explicit VfioType1Backend(KernelIo& io,
                            Aperture aperture = {{Iova(0), Iova((uint64_t{1} << 48) - 1)},
                                                 kPageSize})
      : io_(io), aperture_(aperture) {}

  // Declares `device` a member of the VFIO group at `group_path`; the group is opened once.
  Result<void> add_device(DeviceId device, const std::string& group_path);

  Aperture aperture(DeviceId) const override { return aperture_; }
  // Moving a group between containers is an unset then a set: not atomic, unlike iommufd.
  Result<void> attach(DeviceId device, IoasId ioas) override;
  Result<void> detach(DeviceId device, IoasId ioas) override;
  Result<void> map(IoasId ioas, const DmaMapping& mapping) override;
  Result<void> unmap(IoasId ioas, Iova iova, uint64_t length) override;

  bool has_container(IoasId ioas) const { return containers_.count(ioas.value) != 0; }

 private:
  struct Group {
    KernelFd fd;
    std::optional<uint32_t> ioas;  // whose container the group is set into
    std::set<uint32_t> attached;   // member devices attached
  };
  struct Container {
    KernelFd fd;
    bool iommu_set = false;
  };
  Result<Container*> container_for(IoasId ioas);
  Result<void> leave_container(Group& group);

  KernelIo& io_;
  Aperture aperture_;
  std::map<std::string, Group> groups_;
  std::map<uint32_t, std::string> device_group_;
  std::map<uint32_t, Container> containers_;
};

}  // namespace ioasis::iommu
