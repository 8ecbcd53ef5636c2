#include "iommu/backends/vfio_type1.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/vfio.h>

namespace ioasis::iommu {

// The extension and IOMMU type are passed by value in the ioctl argument.
static void* ioctl_value(unsigned long v) { return reinterpret_cast<void*>(v); }

Result<void> VfioType1Backend::add_device(DeviceId device, const std::string& group_path) {
  if (!groups_.count(group_path)) {
    IOASIS_ASSIGN_OR_RETURN(KernelFd fd, open_kernel_fd(io_, group_path, O_RDWR));
    vfio_group_status status{};
    status.argsz = sizeof(status);
    IOASIS_TRY(
        kernel_ioctl(io_, fd.get(), VFIO_GROUP_GET_STATUS, &status, "VFIO_GROUP_GET_STATUS"));
    if (!(status.flags & VFIO_GROUP_FLAGS_VIABLE)) {
      return Error(Errc::kFailedPrecondition,
                   group_path + " is not viable: bind all its devices to vfio-pci");
    }
    groups_[group_path].fd = std::move(fd);
  }
  device_group_[device.value] = group_path;
  return {};
}

Result<VfioType1Backend::Container*> VfioType1Backend::container_for(IoasId ioas) {
  auto it = containers_.find(ioas.value);
  if (it != containers_.end()) return &it->second;
  IOASIS_ASSIGN_OR_RETURN(KernelFd fd, open_kernel_fd(io_, "/dev/vfio/vfio", O_RDWR));
  IOASIS_ASSIGN_OR_RETURN(int version, kernel_ioctl(io_, fd.get(), VFIO_GET_API_VERSION, nullptr,
                                                    "VFIO_GET_API_VERSION"));
  if (version != VFIO_API_VERSION) {
    return Error(Errc::kUnsupported,
                 fmt::format("VFIO API version {} is not {}", version, VFIO_API_VERSION));
  }
  IOASIS_ASSIGN_OR_RETURN(
      int has, kernel_ioctl(io_, fd.get(), VFIO_CHECK_EXTENSION, ioctl_value(VFIO_TYPE1v2_IOMMU),
                            "VFIO_CHECK_EXTENSION"));
  if (has <= 0) return Error(Errc::kUnsupported, "the host has no VFIO type1v2 IOMMU");
  Container& c = containers_[ioas.value];
  c.fd = std::move(fd);
  return &c;
}

Result<void> VfioType1Backend::leave_container(Group& group) {
  if (!group.ioas) return {};
  IOASIS_TRY(kernel_ioctl(io_, group.fd.get(), VFIO_GROUP_UNSET_CONTAINER, nullptr,
                          "VFIO_GROUP_UNSET_CONTAINER"));
  uint32_t old = *group.ioas;
  group.ioas.reset();
  for (const auto& [path, g] : groups_) {
    if (g.ioas == old) return {};
  }
  containers_.erase(old);  // its last group left: the kernel dropped its mappings
  return {};
}

Result<void> VfioType1Backend::attach(DeviceId device, IoasId ioas) {
  auto path = device_group_.find(device.value);
  if (path == device_group_.end()) {
    return Error(Errc::kFailedPrecondition,
                 fmt::format("device {} has no VFIO group", device.value));
  }
  Group& group = groups_.at(path->second);
  if (group.ioas != ioas.value) {
    IOASIS_ASSIGN_OR_RETURN(Container * c, container_for(ioas));
    IOASIS_TRY(leave_container(group));
    int cfd = c->fd.get();
    IOASIS_TRY(kernel_ioctl(io_, group.fd.get(), VFIO_GROUP_SET_CONTAINER, &cfd,
                            "VFIO_GROUP_SET_CONTAINER"));
    group.ioas = ioas.value;
    if (!c->iommu_set) {
      IOASIS_TRY(kernel_ioctl(io_, c->fd.get(), VFIO_SET_IOMMU, ioctl_value(VFIO_TYPE1v2_IOMMU),
                              "VFIO_SET_IOMMU"));
      c->iommu_set = true;
    }
  }
  for (auto& [p, g] : groups_) g.attached.erase(device.value);
  group.attached.insert(device.value);
  return {};
}

Result<void> VfioType1Backend::detach(DeviceId device, IoasId) {
  auto path = device_group_.find(device.value);
  if (path == device_group_.end()) return {};
  Group& group = groups_.at(path->second);
  group.attached.erase(device.value);
  if (group.attached.empty()) IOASIS_TRY(leave_container(group));
  return {};
}

Result<void> VfioType1Backend::map(IoasId ioas, const DmaMapping& m) {
  auto it = containers_.find(ioas.value);
  if (it == containers_.end()) return Error(Errc::kInternal, "type1: no container for the ioas");
  vfio_iommu_type1_dma_map req{};
  req.argsz = sizeof(req);
  if (has_perm(m.perm, Perm::kRead)) req.flags |= VFIO_DMA_MAP_FLAG_READ;
  if (has_perm(m.perm, Perm::kWrite)) req.flags |= VFIO_DMA_MAP_FLAG_WRITE;
  req.vaddr = m.host.hva.value;
  req.iova = m.iova.value;
  req.size = m.host.length;
  IOASIS_TRY(
      kernel_ioctl(io_, it->second.fd.get(), VFIO_IOMMU_MAP_DMA, &req, "VFIO_IOMMU_MAP_DMA"));
  return {};
}

Result<void> VfioType1Backend::unmap(IoasId ioas, Iova iova, uint64_t length) {
  auto it = containers_.find(ioas.value);
  if (it == containers_.end()) return {};
  vfio_iommu_type1_dma_unmap req{};
  req.argsz = sizeof(req);
  if (iova.value == 0 && length == UINT64_MAX) {
    req.flags = VFIO_DMA_UNMAP_FLAG_ALL;  // iova and size must then be 0
  } else {
    req.iova = iova.value;
    req.size = length;
  }
  IOASIS_TRY(
      kernel_ioctl(io_, it->second.fd.get(), VFIO_IOMMU_UNMAP_DMA, &req, "VFIO_IOMMU_UNMAP_DMA"));
  return {};
}

}  // namespace ioasis::iommu
