#include "iommu/backends/iommufd.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <vector>

#include "iommu/uapi/iommufd.h"

namespace ioasis::iommu {
namespace {

uint32_t map_flags(Perm perm) {
  uint32_t flags = IOMMU_IOAS_MAP_FIXED_IOVA;
  if (has_perm(perm, Perm::kRead)) flags |= IOMMU_IOAS_MAP_READABLE;
  if (has_perm(perm, Perm::kWrite)) flags |= IOMMU_IOAS_MAP_WRITEABLE;
  return flags;
}

}  // namespace

Result<std::shared_ptr<IommufdBackend>> IommufdBackend::open(KernelIo& io, Aperture aperture,
                                                             const std::string& path) {
  IOASIS_ASSIGN_OR_RETURN(KernelFd fd, open_kernel_fd(io, path, O_RDWR));
  return std::shared_ptr<IommufdBackend>(new IommufdBackend(io, std::move(fd), aperture));
}

Result<void> IommufdBackend::bind(DeviceId device, int vfio_cdev_fd) {
  vfio_device_bind_iommufd bind{};
  bind.argsz = sizeof(bind);
  bind.iommufd = fd_.get();
  IOASIS_TRY(
      kernel_ioctl(io_, vfio_cdev_fd, VFIO_DEVICE_BIND_IOMMUFD, &bind, "VFIO_DEVICE_BIND_IOMMUFD"));
  devices_[device.value] = Bound{vfio_cdev_fd, bind.out_devid, std::nullopt};
  return {};
}

std::optional<uint32_t> IommufdBackend::kernel_ioas(IoasId ioas) const {
  auto it = kernel_ioas_.find(ioas.value);
  if (it == kernel_ioas_.end()) return std::nullopt;
  return it->second;
}

Result<uint32_t> IommufdBackend::kernel_ioas_for(IoasId ioas) {
  if (auto k = kernel_ioas(ioas)) return *k;
  iommu_ioas_alloc alloc{};
  alloc.size = sizeof(alloc);
  IOASIS_TRY(kernel_ioctl(io_, fd_.get(), IOMMU_IOAS_ALLOC, &alloc, "IOMMU_IOAS_ALLOC"));
  kernel_ioas_[ioas.value] = alloc.out_ioas_id;
  return alloc.out_ioas_id;
}

// A kernel IOAS no device uses is destroyed: it holds pins nobody needs, and the context replays
// the mappings when a device comes back.
void IommufdBackend::drop_if_unused(uint32_t ioas) {
  auto it = kernel_ioas_.find(ioas);
  if (it == kernel_ioas_.end()) return;
  for (const auto& [id, b] : devices_) {
    if (b.ioas == ioas) return;
  }
  iommu_destroy destroy{sizeof(destroy), it->second};
  if (auto r = kernel_ioctl(io_, fd_.get(), IOMMU_DESTROY, &destroy, "IOMMU_DESTROY"); !r.ok()) {
    spdlog::warn("iommufd: {}", r.error().message());
  }
  kernel_ioas_.erase(it);
}

Result<void> IommufdBackend::attach(DeviceId device, IoasId ioas) {
  auto dev = devices_.find(device.value);
  if (dev == devices_.end()) {
    return Error(Errc::kFailedPrecondition,
                 fmt::format("device {} is not bound to iommufd", device.value));
  }
  IOASIS_ASSIGN_OR_RETURN(uint32_t kioas, kernel_ioas_for(ioas));
  // Attaching an attached cdev replaces its page table in one step (hw_pagetable replacement).
  vfio_device_attach_iommufd_pt attach{};
  attach.argsz = sizeof(attach);
  attach.pt_id = kioas;
  auto r = kernel_ioctl(io_, dev->second.cdev_fd, VFIO_DEVICE_ATTACH_IOMMUFD_PT, &attach,
                        "VFIO_DEVICE_ATTACH_IOMMUFD_PT");
  if (!r.ok()) {
    drop_if_unused(ioas.value);
    return std::move(r).error();
  }
  std::optional<uint32_t> old = dev->second.ioas;
  dev->second.ioas = ioas.value;
  if (old && *old != ioas.value) drop_if_unused(*old);
  return {};
}

Result<void> IommufdBackend::detach(DeviceId device, IoasId ioas) {
  auto dev = devices_.find(device.value);
  if (dev == devices_.end() || dev->second.ioas != ioas.value) {
    return Error(Errc::kFailedPrecondition,
                 fmt::format("device {} is not attached through iommufd", device.value));
  }
  vfio_device_detach_iommufd_pt detach{};
  detach.argsz = sizeof(detach);
  IOASIS_TRY(kernel_ioctl(io_, dev->second.cdev_fd, VFIO_DEVICE_DETACH_IOMMUFD_PT, &detach,
                          "VFIO_DEVICE_DETACH_IOMMUFD_PT"));
  dev->second.ioas.reset();
  drop_if_unused(ioas.value);
  return {};
}

Result<void> IommufdBackend::map(IoasId ioas, const DmaMapping& m) {
  auto k = kernel_ioas(ioas);
  if (!k) return Error(Errc::kInternal, "iommufd: map into an address space with no device");
  iommu_ioas_map req{};
  req.size = sizeof(req);
  req.flags = map_flags(m.perm);
  req.ioas_id = *k;
  req.user_va = m.host.hva.value;
  req.length = m.host.length;
  req.iova = m.iova.value;
  IOASIS_TRY(kernel_ioctl(io_, fd_.get(), IOMMU_IOAS_MAP, &req, "IOMMU_IOAS_MAP"));
  return {};
}

Result<void> IommufdBackend::unmap(IoasId ioas, Iova iova, uint64_t length) {
  auto k = kernel_ioas(ioas);
  if (!k) return {};
  iommu_ioas_unmap req{};
  req.size = sizeof(req);
  req.ioas_id = *k;
  req.iova = iova.value;
  req.length = length;
  IOASIS_TRY(kernel_ioctl(io_, fd_.get(), IOMMU_IOAS_UNMAP, &req, "IOMMU_IOAS_UNMAP"));
  return {};
}

Result<void> IommufdBackend::copy(IoasId src, Iova src_iova, IoasId dst, const DmaMapping& m) {
  auto ks = kernel_ioas(src);
  auto kd = kernel_ioas(dst);
  if (!ks || !kd) return Error(Errc::kUnsupported, "iommufd: copy needs both kernel IOASes");
  iommu_ioas_copy req{};
  req.size = sizeof(req);
  req.flags = map_flags(m.perm);
  req.dst_ioas_id = *kd;
  req.src_ioas_id = *ks;
  req.length = m.host.length;
  req.dst_iova = m.iova.value;
  req.src_iova = src_iova.value;
  IOASIS_TRY(kernel_ioctl(io_, fd_.get(), IOMMU_IOAS_COPY, &req, "IOMMU_IOAS_COPY"));
  return {};
}

Result<std::vector<IovaRange>> IommufdBackend::kernel_iova_ranges(IoasId ioas) {
  auto kernel = kernel_ioas(ioas);
  if (!kernel) return Error(Errc::kFailedPrecondition, "no device uses this address space");
  uint32_t k = *kernel;
  std::vector<iommu_iova_range> ranges(1);
  for (;;) {
    iommu_ioas_iova_ranges req{};
    req.size = sizeof(req);
    req.ioas_id = k;
    req.num_iovas = static_cast<uint32_t>(ranges.size());
    req.allowed_iovas = reinterpret_cast<uintptr_t>(ranges.data());
    int r = io_.ioctl(fd_.get(), IOMMU_IOAS_IOVA_RANGES, &req);
    if (r == -EMSGSIZE) {  // the kernel wrote how many it has
      ranges.resize(req.num_iovas);
      continue;
    }
    if (r < 0) return Error::from_errno("IOMMU_IOAS_IOVA_RANGES", -r);
    std::vector<IovaRange> out;
    for (uint32_t i = 0; i < req.num_iovas; ++i) {
      out.push_back({Iova(ranges[i].start), Iova(ranges[i].last)});
    }
    return out;
  }
}

}  // namespace ioasis::iommu
