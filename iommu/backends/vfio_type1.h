// DMA through legacy VFIO: VFIO groups (/dev/vfio/N) and type1 containers (/dev/vfio/vfio).
//
// The kernel's rules shape this backend: VFIO_GROUP_GET_DEVICE_FD needs the group set into a
// container whose IOMMU is set, and VFIO_GROUP_UNSET_CONTAINER fails with EBUSY while a device fd
// of the group is open. So a group cannot move between containers once its device is in use.
// Instead each group gets a container of its own when its first device is added and keeps it for
// life; attaching the group's devices to an address space makes that container mirror the
// address space (emptied, then refilled), detaching the last of them empties it.
//
// Two groups on one address space therefore have two containers with the same mappings: the
// kernel pins (and charges RLIMIT_MEMLOCK for) those pages once per container, while our own
// accounting counts them once. Moving a group is an unmap of everything then a replay, not
// atomic as an iommufd replace is: the group's DMA faults in between.
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

  // Declares `device` a member of the VFIO group at `group_path`. The group is opened and set
  // into a container of its own (with the type1v2 IOMMU) the first time, so that its device fds
  // can be opened right away; the container holds no mapping until a device is attached.
  Result<void> add_device(DeviceId device, const std::string& group_path);
  // Forgets a detached `device`; its group is closed (and leaves its container) with its last
  // device.
  void remove_device(DeviceId device);
  // The group fd of `group_path` (added before), for VFIO_GROUP_GET_DEVICE_FD.
  Result<int> group_fd(const std::string& group_path) const;

  Aperture aperture(DeviceId) const override { return aperture_; }
  Result<void> attach(DeviceId device, IoasId ioas) override;
  Result<void> detach(DeviceId device, IoasId ioas) override;
  Result<void> map(IoasId ioas, const DmaMapping& mapping) override;
  Result<void> unmap(IoasId ioas, Iova iova, uint64_t length) override;

  // The address space whose mappings the container of `group_path` mirrors, if any.
  std::optional<IoasId> group_ioas(const std::string& group_path) const;

 private:
  struct Group {
    KernelFd fd;
    KernelFd container;            // set into it at add_device, for the group's lifetime
    std::optional<uint32_t> ioas;  // whose mappings the container mirrors
    std::set<uint32_t> attached;   // member devices attached
  };
  Result<KernelFd> open_container();
  Result<void> map_into(Group& group, const DmaMapping& m);
  Result<void> unmap_from(Group& group, Iova iova, uint64_t length);
  // Empties the group's container and stops it mirroring anything.
  Result<void> leave(Group& group);
  bool has_group_on(uint32_t ioas) const;

  KernelIo& io_;
  Aperture aperture_;
  std::map<std::string, Group> groups_;
  std::map<uint32_t, std::string> device_group_;
  // The mappings of each address space a group mirrors, to fill a group's container when it
  // joins an address space other groups of this backend already mirror: the context replays
  // only to a backend new to the address space.
  std::map<uint32_t, std::map<uint64_t, DmaMapping>> mirrored_;
};

}  // namespace ioasis::iommu
