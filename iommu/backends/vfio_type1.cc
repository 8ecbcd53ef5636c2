#include "iommu/backends/vfio_type1.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/vfio.h>
#include <spdlog/spdlog.h>

#include <vector>

namespace ioasis::iommu {

// The extension and IOMMU type are passed by value in the ioctl argument.
static void* ioctl_value(unsigned long v) { return reinterpret_cast<void*>(v); }

Result<KernelFd> VfioType1Backend::open_container() {
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
  return fd;
}

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
    if (status.flags & VFIO_GROUP_FLAGS_CONTAINER_SET) {
      return Error(Errc::kFailedPrecondition, group_path + " is in use by another container");
    }
    IOASIS_ASSIGN_OR_RETURN(KernelFd container, open_container());
    int cfd = container.get();
    IOASIS_TRY(
        kernel_ioctl(io_, fd.get(), VFIO_GROUP_SET_CONTAINER, &cfd, "VFIO_GROUP_SET_CONTAINER"));
    // The IOMMU can only be set once the container has a group.
    if (auto r = kernel_ioctl(io_, cfd, VFIO_SET_IOMMU, ioctl_value(VFIO_TYPE1v2_IOMMU),
                              "VFIO_SET_IOMMU");
        !r.ok()) {
      (void)io_.ioctl(fd.get(), VFIO_GROUP_UNSET_CONTAINER, nullptr);
      return std::move(r).error();
    }
    Group& g = groups_[group_path];
    g.fd = std::move(fd);
    g.container = std::move(container);
  }
  device_group_[device.value] = group_path;
  return {};
}

void VfioType1Backend::remove_device(DeviceId device) {
  auto it = device_group_.find(device.value);
  if (it == device_group_.end()) return;
  std::string path = it->second;
  device_group_.erase(it);
  for (const auto& [id, group] : device_group_) {
    if (group == path) return;
  }
  groups_.erase(path);
}

Result<int> VfioType1Backend::group_fd(const std::string& group_path) const {
  auto it = groups_.find(group_path);
  if (it == groups_.end()) return Error(Errc::kNotFound, group_path + " was not added");
  return it->second.fd.get();
}

std::optional<IoasId> VfioType1Backend::group_ioas(const std::string& group_path) const {
  auto it = groups_.find(group_path);
  if (it == groups_.end() || !it->second.ioas) return std::nullopt;
  return IoasId{*it->second.ioas};
}

bool VfioType1Backend::has_group_on(uint32_t ioas) const {
  for (const auto& [path, g] : groups_) {
    if (g.ioas == ioas) return true;
  }
  return false;
}

Result<void> VfioType1Backend::map_into(Group& group, const DmaMapping& m) {
  vfio_iommu_type1_dma_map req{};
  req.argsz = sizeof(req);
  if (has_perm(m.perm, Perm::kRead)) req.flags |= VFIO_DMA_MAP_FLAG_READ;
  if (has_perm(m.perm, Perm::kWrite)) req.flags |= VFIO_DMA_MAP_FLAG_WRITE;
  req.vaddr = m.host.hva.value;
  req.iova = m.iova.value;
  req.size = m.host.length;
  IOASIS_TRY(
      kernel_ioctl(io_, group.container.get(), VFIO_IOMMU_MAP_DMA, &req, "VFIO_IOMMU_MAP_DMA"));
  return {};
}

Result<void> VfioType1Backend::unmap_from(Group& group, Iova iova, uint64_t length) {
  vfio_iommu_type1_dma_unmap req{};
  req.argsz = sizeof(req);
  if (iova.value == 0 && length == UINT64_MAX) {
    req.flags = VFIO_DMA_UNMAP_FLAG_ALL;  // iova and size must then be 0
  } else {
    req.iova = iova.value;
    req.size = length;
  }
  IOASIS_TRY(
      kernel_ioctl(io_, group.container.get(), VFIO_IOMMU_UNMAP_DMA, &req, "VFIO_IOMMU_UNMAP_DMA"));
  return {};
}

Result<void> VfioType1Backend::leave(Group& group) {
  if (!group.ioas) return {};
  IOASIS_TRY(unmap_from(group, Iova(0), UINT64_MAX));
  uint32_t old = *group.ioas;
  group.ioas.reset();
  // With no group left on it the context replays the address space to whichever comes next.
  if (!has_group_on(old)) mirrored_.erase(old);
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
    IOASIS_TRY(leave(group));
    group.ioas = ioas.value;
    // Other groups mirror `ioas` already: the context will not replay it, so copy their view.
    // When none does, mirrored_ has nothing for `ioas` and the context's replay fills it.
    for (const auto& [iova, m] : mirrored_[ioas.value]) {
      if (auto r = map_into(group, m); !r.ok()) {
        (void)leave(group);
        return std::move(r).error().context("filling the container of " + path->second);
      }
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
  if (group.attached.empty()) IOASIS_TRY(leave(group));
  return {};
}

Result<void> VfioType1Backend::map(IoasId ioas, const DmaMapping& m) {
  if (!has_group_on(ioas.value)) {
    return Error(Errc::kInternal, "type1: no container mirrors the address space");
  }
  std::vector<Group*> done;
  for (auto& [path, g] : groups_) {
    if (g.ioas != ioas.value) continue;
    if (auto r = map_into(g, m); !r.ok()) {
      for (Group* d : done) (void)unmap_from(*d, m.iova, m.host.length);
      return r;
    }
    done.push_back(&g);
  }
  mirrored_[ioas.value][m.iova.value] = m;
  return {};
}

Result<void> VfioType1Backend::unmap(IoasId ioas, Iova iova, uint64_t length) {
  for (auto& [path, g] : groups_) {
    if (g.ioas != ioas.value) continue;
    IOASIS_TRY(unmap_from(g, iova, length));
  }
  auto it = mirrored_.find(ioas.value);
  if (it == mirrored_.end()) return {};
  uint64_t last = length == 0 ? iova.value : iova.value + (length - 1);
  if (last < iova.value) last = UINT64_MAX;
  auto& m = it->second;
  m.erase(m.lower_bound(iova.value), m.upper_bound(last));
  return {};
}

}  // namespace ioasis::iommu
