// DMA through the kernel's iommufd (/dev/iommu) and VFIO device cdevs. One kernel IOAS mirrors
// each of our address spaces that has a device on it, so devices sharing an address space share
// kernel page tables and pins; IOAS_COPY shares pinned pages between kernel IOASes.
#pragma once

#include <map>
#include <memory>
#include <optional>

#include "iommu/backends/kernel_io.h"
#include "iommu/dma_backend.h"

namespace ioasis::iommu {

class IommufdBackend final : public DmaBackend {
 public:
  // The aperture cannot be learnt before a device is attached, so it is declared: 48-bit IOVAs
  // with 4 KiB pages fit every x86 IOMMU.
  static Result<std::shared_ptr<IommufdBackend>> open(
      KernelIo& io, Aperture aperture = {{Iova(0), Iova((uint64_t{1} << 48) - 1)}, kPageSize},
      const std::string& path = "/dev/iommu");

  // Binds a VFIO device cdev (/dev/vfio/devices/vfioN, opened and kept by the caller) to this
  // iommufd, as `device`.
  Result<void> bind(DeviceId device, int vfio_cdev_fd);
  // Forgets a detached `device`; the kernel unbinds it when its cdev fd is closed.
  void unbind(DeviceId device) { devices_.erase(device.value); }

  Aperture aperture(DeviceId) const override { return aperture_; }
  Result<void> attach(DeviceId device, IoasId ioas) override;
  Result<void> detach(DeviceId device, IoasId ioas) override;
  Result<void> map(IoasId ioas, const DmaMapping& mapping) override;
  Result<void> unmap(IoasId ioas, Iova iova, uint64_t length) override;
  Result<void> copy(IoasId src, Iova src_iova, IoasId dst, const DmaMapping& mapping) override;

  // The kernel IOAS mirroring `ioas`, if any.
  std::optional<uint32_t> kernel_ioas(IoasId ioas) const;
  // What the kernel says `ioas` may map (IOMMU_IOAS_IOVA_RANGES).
  Result<std::vector<IovaRange>> kernel_iova_ranges(IoasId ioas);

 private:
  struct Bound {
    int cdev_fd;
    uint32_t dev_id;
    std::optional<uint32_t> ioas;
  };
  IommufdBackend(KernelIo& io, KernelFd fd, Aperture aperture)
      : io_(io), fd_(std::move(fd)), aperture_(aperture) {}
  Result<uint32_t> kernel_ioas_for(IoasId ioas);
  void drop_if_unused(uint32_t ioas);

  KernelIo& io_;
  KernelFd fd_;
  Aperture aperture_;
  std::map<uint32_t, Bound> devices_;
  std::map<uint32_t, uint32_t> kernel_ioas_;  // our IoasId -> kernel IOAS id
};

}  // namespace ioasis::iommu
