// Kernel VFIO passthrough: a VFIO device fd as a VfioDeviceTransport, and the per-VM opener that
// reaches the fd either way the kernel offers.
//
// - Device cdev (/dev/vfio/devices/vfioN): opened directly, bound to the VM's iommufd
//   (IommufdBackend); attaching it to an address space points it at that kernel IOAS.
// - Group + type1 (a PCI device's sysfs directory, /sys/bus/pci/devices/DDDD:BB:DD.F): the
//   device's group /dev/vfio/G is set into a type1 container (VfioType1Backend), then
//   VFIO_GROUP_GET_DEVICE_FD hands out the device fd.
//
// Every system call goes through iommu::KernelIo, so tests run this against the fake of the uAPI.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "devices/vfio/vfio_device_transport.h"
#include "iommu/backends/iommufd.h"
#include "iommu/backends/kernel_io.h"
#include "iommu/backends/vfio_type1.h"
#include "iommu/ioasid_context.h"

namespace ioasis::devices {

class KernelVfioDevice final : public VfioDeviceTransport {
 public:
  // Takes over an open VFIO device fd; fails unless VFIO_DEVICE_GET_INFO says it is a PCI device.
  // `name` is used in errors.
  static Result<std::shared_ptr<KernelVfioDevice>> create(iommu::KernelIo& io, iommu::KernelFd fd,
                                                          std::string name);

  Result<VfioRegionInfo> region_info(uint32_t index) override;
  Result<vfio_irq_info> irq_info(uint32_t index) override;
  Result<void> set_irqs(uint32_t index, uint32_t start, std::span<const int> eventfds) override;
  Result<void> unmask_irq(uint32_t index) override;
  Result<void> set_unmask_eventfd(uint32_t index, int eventfd) override;
  Result<void> region_read(uint32_t index, uint64_t offset, std::span<uint8_t> data) override;
  Result<void> region_write(uint32_t index, uint64_t offset,
                            std::span<const uint8_t> data) override;
  Result<MappedRegion> map_region(uint32_t index, uint64_t offset, uint64_t size) override;
  // VFIO_DEVICE_RESET when the device offers it (VFIO_DEVICE_FLAGS_RESET); otherwise nothing.
  Result<void> reset() override;
  std::optional<Error> failure() const override;

  int fd() const { return fd_.get(); }
  uint32_t flags() const { return flags_; }

 private:
  KernelVfioDevice(iommu::KernelIo& io, iommu::KernelFd fd, std::string name, uint32_t flags)
      : io_(io), fd_(std::move(fd)), name_(std::move(name)), flags_(flags) {}
  Result<void> irq_set(uint32_t index, uint32_t flags, uint32_t start, uint32_t count,
                       std::span<const int> eventfds);
  Result<VfioRegionInfo> query_region(uint32_t index);
  // The region's info when [offset, offset+size) lies inside it.
  Result<VfioRegionInfo> checked_region(uint32_t index, uint64_t offset, uint64_t size);
  Error access_error(const char* what, uint32_t index, uint64_t offset, ssize_t r);

  iommu::KernelIo& io_;
  iommu::KernelFd fd_;
  std::string name_;
  uint32_t flags_;
  mutable std::mutex mu_;
  std::map<uint32_t, VfioRegionInfo> regions_;
  std::optional<Error> failure_;
};

// Kernel VFIO groups share the isolation-group number space with the groups users give vfio-user
// devices (any 64-bit number). Kernel groups are tagged with the top bit so that a vfio-user
// "group=5" never lands in IOMMU group 5 by accident.
inline constexpr uint64_t kKernelGroupTag = uint64_t{1} << 63;

struct KernelVfioOptions {
  // Where sysfs is mounted; tests point it at a directory tree of their own.
  std::string sysfs_root = "/sys";
  std::string iommufd_path = "/dev/iommu";
};

// Opens kernel VFIO devices for one VM: joins each to the VM's IoasidContext with its IOMMU group
// as isolation group, through a lazily opened iommufd or type1 backend. Outlives its devices.
class KernelVfio {
 public:
  KernelVfio(iommu::KernelIo& io, iommu::IoasidContext& context, KernelVfioOptions options = {})
      : io_(io), context_(context), options_(std::move(options)) {}

  struct Opened {
    std::shared_ptr<KernelVfioDevice> device;
    iommu::DeviceId dma;       // joined, not attached
    iommu::GroupId group;      // tagged with kKernelGroupTag
    std::string kernel_group;  // the IOMMU group as the kernel names it
  };
  // `path` is a device cdev (/dev/vfio/devices/vfioN) or a PCI device's sysfs directory; `name`
  // is the device's name in the context.
  Result<Opened> open(const std::string& path, const std::string& name);

  const std::shared_ptr<iommu::IommufdBackend>& iommufd() const { return iommufd_; }
  const std::shared_ptr<iommu::VfioType1Backend>& type1() const { return type1_; }

 private:
  Result<Opened> open_cdev(const std::string& path, const std::string& name);
  Result<Opened> open_in_group(const std::string& path, const std::string& name);
  // The basename of the `iommu_group` link under `device_dir`.
  Result<std::string> iommu_group(const std::string& device_dir) const;

  iommu::KernelIo& io_;
  iommu::IoasidContext& context_;
  KernelVfioOptions options_;
  std::shared_ptr<iommu::IommufdBackend> iommufd_;
  std::shared_ptr<iommu::VfioType1Backend> type1_;
};

}  // namespace ioasis::devices
