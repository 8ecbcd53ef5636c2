// KernelVfio: from a path the user gives to a joined device fd (kernel_vfio_device.h).
#include <fcntl.h>
#include <fmt/format.h>

#include <charconv>
#include <filesystem>
#include <functional>
#include <system_error>

#include "devices/vfio/kernel_vfio_device.h"

namespace ioasis::devices {
namespace {

constexpr std::string_view kCdevDir = "/dev/vfio/devices/";

Result<uint64_t> group_number(const std::string& text, const std::string& where) {
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size() || n >= kKernelGroupTag) {
    return Error(Errc::kInvalidArgument,
                 fmt::format("{}: IOMMU group '{}' is not a number", where, text));
  }
  return n;
}

// Undoes the join (and what the backend was told) when opening fails after it.
class JoinGuard {
 public:
  JoinGuard(iommu::IoasidContext& context, iommu::DeviceId id, std::function<void()> forget)
      : context_(context), id_(id), forget_(std::move(forget)) {}
  ~JoinGuard() {
    if (!armed_) return;
    forget_();
    (void)context_.leave(id_);
  }
  JoinGuard(const JoinGuard&) = delete;
  JoinGuard& operator=(const JoinGuard&) = delete;
  void release() { armed_ = false; }

 private:
  iommu::IoasidContext& context_;
  iommu::DeviceId id_;
  std::function<void()> forget_;
  bool armed_ = true;
};

}  // namespace

Result<std::string> KernelVfio::iommu_group(const std::string& device_dir) const {
  std::error_code ec;
  std::filesystem::path link = std::filesystem::read_symlink(device_dir + "/iommu_group", ec);
  if (ec) return Error::from_errno("IOMMU group of " + device_dir, ec.value());
  return link.filename().string();
}

Result<KernelVfio::Opened> KernelVfio::open(const std::string& path, const std::string& name) {
  return path.rfind(kCdevDir, 0) == 0 ? open_cdev(path, name) : open_in_group(path, name);
}

Result<KernelVfio::Opened> KernelVfio::open_cdev(const std::string& path, const std::string& name) {
  IOASIS_ASSIGN_OR_RETURN(iommu::KernelFd fd, iommu::open_kernel_fd(io_, path, O_RDWR));
  std::string node = path.substr(kCdevDir.size());
  IOASIS_ASSIGN_OR_RETURN(std::string group, iommu_group(fmt::format("{}/class/vfio-dev/{}/device",
                                                                     options_.sysfs_root, node)));
  IOASIS_ASSIGN_OR_RETURN(uint64_t number, group_number(group, path));
  if (!iommufd_) {
    auto opened = iommu::IommufdBackend::open(
        io_, {{Iova(0), Iova((uint64_t{1} << 48) - 1)}, iommu::kPageSize}, options_.iommufd_path);
    if (!opened.ok()) return std::move(opened).error();
    iommufd_ = std::move(*opened);
  }
  iommu::GroupId gid{kKernelGroupTag | number};
  IOASIS_ASSIGN_OR_RETURN(iommu::DeviceId dma, context_.join({name, gid, iommufd_}));
  JoinGuard guard(context_, dma, [&] { iommufd_->unbind(dma); });
  // Binding makes the cdev a device fd; until then the kernel refuses device ioctls.
  IOASIS_TRY(iommufd_->bind(dma, fd.get()));
  IOASIS_ASSIGN_OR_RETURN(std::shared_ptr<KernelVfioDevice> device,
                          KernelVfioDevice::create(io_, std::move(fd), path));
  guard.release();
  return Opened{std::move(device), dma, gid, group};
}

Result<KernelVfio::Opened> KernelVfio::open_in_group(const std::string& path,
                                                     const std::string& name) {
  IOASIS_ASSIGN_OR_RETURN(std::string group, iommu_group(path));
  IOASIS_ASSIGN_OR_RETURN(uint64_t number, group_number(group, path));
  std::string pci_name = std::filesystem::path(path).lexically_normal().filename().string();
  if (pci_name.empty()) pci_name = std::filesystem::path(path).parent_path().filename().string();
  if (!type1_) type1_ = std::make_shared<iommu::VfioType1Backend>(io_);
  iommu::GroupId gid{kKernelGroupTag | number};
  IOASIS_ASSIGN_OR_RETURN(iommu::DeviceId dma, context_.join({name, gid, type1_}));
  JoinGuard guard(context_, dma, [&] { type1_->remove_device(dma); });
  std::string group_path = "/dev/vfio/" + group;
  IOASIS_TRY(type1_->add_device(dma, group_path));
  IOASIS_ASSIGN_OR_RETURN(int group_fd, type1_->group_fd(group_path));
  int fd = io_.ioctl(group_fd, VFIO_GROUP_GET_DEVICE_FD, pci_name.data());
  if (fd < 0) {
    return Error::from_errno(fmt::format("VFIO_GROUP_GET_DEVICE_FD {} in {}", pci_name, group_path),
                             -fd);
  }
  IOASIS_ASSIGN_OR_RETURN(std::shared_ptr<KernelVfioDevice> device,
                          KernelVfioDevice::create(io_, iommu::KernelFd(&io_, fd), path));
  guard.release();
  return Opened{std::move(device), dma, gid, group};
}

}  // namespace ioasis::devices
