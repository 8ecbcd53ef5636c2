#include "devices/vfio/kernel_vfio_device.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <vector>

namespace ioasis::devices {
namespace {

// The capability chain after a vfio_region_info (<linux/vfio.h> "capability chain"): each header's
// `next` is an offset from the start of the info struct, 0 ends the chain.
void parse_region_caps(const std::vector<uint8_t>& buf, uint32_t first, VfioRegionInfo& out) {
  uint32_t at = first;
  for (int hops = 0; at != 0 && hops < 64; ++hops) {
    if (at < sizeof(vfio_region_info) || at > buf.size() ||
        buf.size() - at < sizeof(vfio_info_cap_header)) {
      return;
    }
    vfio_info_cap_header header;
    std::memcpy(&header, buf.data() + at, sizeof(header));
    if (header.id == VFIO_REGION_INFO_CAP_SPARSE_MMAP &&
        buf.size() - at >= sizeof(vfio_region_info_cap_sparse_mmap)) {
      vfio_region_info_cap_sparse_mmap sparse;
      std::memcpy(&sparse, buf.data() + at, sizeof(sparse));
      size_t room = (buf.size() - at - sizeof(sparse)) / sizeof(vfio_region_sparse_mmap_area);
      out.mmap_areas.clear();
      for (uint32_t i = 0; i < sparse.nr_areas && i < room; ++i) {
        vfio_region_sparse_mmap_area a;
        std::memcpy(&a, buf.data() + at + sizeof(sparse) + i * sizeof(a), sizeof(a));
        if (a.size && a.offset <= out.size && a.size <= out.size - a.offset) {
          out.mmap_areas.push_back({a.offset, a.size});
        }
      }
    }
    at = header.next;
  }
}

// An ioctl whose error names the device and the object it was about.
Result<int> device_ioctl(iommu::KernelIo& io, int fd, unsigned long request, void* arg,
                         const char* what, const std::string& where) {
  auto r = iommu::kernel_ioctl(io, fd, request, arg, what);
  if (!r.ok()) return std::move(r).error().context(where);
  return r;
}

}  // namespace

Result<std::shared_ptr<KernelVfioDevice>> KernelVfioDevice::create(iommu::KernelIo& io,
                                                                   iommu::KernelFd fd,
                                                                   std::string name) {
  vfio_device_info info{};
  info.argsz = sizeof(info);
  IOASIS_TRY(device_ioctl(io, fd.get(), VFIO_DEVICE_GET_INFO, &info, "VFIO_DEVICE_GET_INFO", name));
  if (!(info.flags & VFIO_DEVICE_FLAGS_PCI)) {
    return Error(Errc::kUnsupported, name + " is not a PCI device (VFIO_DEVICE_FLAGS_PCI)");
  }
  if (info.num_regions <= VFIO_PCI_CONFIG_REGION_INDEX) {
    return Error(Errc::kUnsupported, name + " has no PCI config region");
  }
  return std::shared_ptr<KernelVfioDevice>(
      new KernelVfioDevice(io, std::move(fd), std::move(name), info.flags));
}

Result<VfioRegionInfo> KernelVfioDevice::query_region(uint32_t index) {
  // argsz grows when the capabilities do not fit: the kernel then sets the size it needs.
  std::vector<uint8_t> buf(sizeof(vfio_region_info));
  vfio_region_info info{};
  for (int attempt = 0; attempt < 4; ++attempt) {
    info = vfio_region_info{};
    info.argsz = static_cast<uint32_t>(buf.size());
    info.index = index;
    std::memcpy(buf.data(), &info, sizeof(info));
    IOASIS_TRY(device_ioctl(io_, fd_.get(), VFIO_DEVICE_GET_REGION_INFO, buf.data(),
                            "VFIO_DEVICE_GET_REGION_INFO",
                            fmt::format("{} region {}", name_, index)));
    std::memcpy(&info, buf.data(), sizeof(info));
    if (!(info.flags & VFIO_REGION_INFO_FLAG_CAPS) || info.argsz <= buf.size()) break;
    buf.resize(info.argsz);
  }
  VfioRegionInfo out;
  out.index = index;
  out.flags = info.flags;
  out.size = info.size;
  out.mmap_offset = info.offset;
  if (out.mmappable()) {
    out.mmap_areas.push_back({0, info.size});  // the whole region unless a sparse cap says not
    if ((info.flags & VFIO_REGION_INFO_FLAG_CAPS) && info.cap_offset) {
      parse_region_caps(buf, info.cap_offset, out);
    }
  }
  return out;
}

Result<VfioRegionInfo> KernelVfioDevice::region_info(uint32_t index) {
  {
    std::lock_guard lock(mu_);
    auto it = regions_.find(index);
    if (it != regions_.end()) return it->second;
  }
  IOASIS_ASSIGN_OR_RETURN(VfioRegionInfo info, query_region(index));
  std::lock_guard lock(mu_);
  regions_[index] = info;
  return info;
}

Result<vfio_irq_info> KernelVfioDevice::irq_info(uint32_t index) {
  vfio_irq_info info{sizeof(vfio_irq_info), 0, index, 0};
  IOASIS_TRY(device_ioctl(io_, fd_.get(), VFIO_DEVICE_GET_IRQ_INFO, &info,
                          "VFIO_DEVICE_GET_IRQ_INFO", fmt::format("{} IRQ {}", name_, index)));
  return info;
}

Result<void> KernelVfioDevice::set_irqs(uint32_t index, uint32_t start,
                                        std::span<const int> eventfds) {
  if (eventfds.empty()) {  // count 0 with DATA_NONE: every vector off
    return irq_set(index, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0, {});
  }
  return irq_set(index, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, start,
                 static_cast<uint32_t>(eventfds.size()), eventfds);
}

Result<void> KernelVfioDevice::unmask_irq(uint32_t index) {
  return irq_set(index, VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_UNMASK, 0, 1, {});
}

Result<void> KernelVfioDevice::set_unmask_eventfd(uint32_t index, int eventfd) {
  return irq_set(index, VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_UNMASK, 0, 1,
                 std::span(&eventfd, 1));
}

// VFIO_DEVICE_SET_IRQS: the fixed part, then one s32 per vector for DATA_EVENTFD.
Result<void> KernelVfioDevice::irq_set(uint32_t index, uint32_t flags, uint32_t start,
                                       uint32_t count, std::span<const int> eventfds) {
  std::vector<uint8_t> buf(sizeof(vfio_irq_set) + eventfds.size() * sizeof(int32_t));
  vfio_irq_set set{};
  set.argsz = static_cast<uint32_t>(buf.size());
  set.flags = flags;
  set.index = index;
  set.start = start;
  set.count = count;
  std::memcpy(buf.data(), &set, sizeof(set));
  for (size_t i = 0; i < eventfds.size(); ++i) {
    int32_t fd = eventfds[i];
    std::memcpy(buf.data() + sizeof(set) + i * sizeof(fd), &fd, sizeof(fd));
  }
  IOASIS_TRY(device_ioctl(io_, fd_.get(), VFIO_DEVICE_SET_IRQS, buf.data(), "VFIO_DEVICE_SET_IRQS",
                          fmt::format("{} IRQ {}", name_, index)));
  return {};
}

Result<VfioRegionInfo> KernelVfioDevice::checked_region(uint32_t index, uint64_t offset,
                                                        uint64_t size) {
  IOASIS_ASSIGN_OR_RETURN(VfioRegionInfo info, region_info(index));
  if (offset > info.size || size > info.size - offset) {
    return Error(Errc::kInvalidArgument,
                 fmt::format("{}: {:#x}+{:#x} is outside region {} ({:#x} bytes)", name_, offset,
                             size, index, info.size));
  }
  return info;
}

Error KernelVfioDevice::access_error(const char* what, uint32_t index, uint64_t offset, ssize_t r) {
  Error e =
      r < 0 ? Error::from_errno(fmt::format("{} {} region {} at {:#x}", what, name_, index, offset),
                                static_cast<int>(-r))
            : Error(Errc::kInternal, fmt::format("{} {} region {} at {:#x}: short transfer", what,
                                                 name_, index, offset));
  // ENODEV: the device went away (unbound or unplugged); it will not come back to this fd.
  if (r == -ENODEV) {
    std::lock_guard lock(mu_);
    if (!failure_) failure_ = e;
  }
  return e;
}

Result<void> KernelVfioDevice::region_read(uint32_t index, uint64_t offset,
                                           std::span<uint8_t> data) {
  IOASIS_ASSIGN_OR_RETURN(VfioRegionInfo info, checked_region(index, offset, data.size()));
  if (!info.readable()) return Error(Errc::kInvalidArgument, name_ + ": region is not readable");
  ssize_t r = io_.pread(fd_.get(), data.data(), data.size(), info.mmap_offset + offset);
  if (r != static_cast<ssize_t>(data.size())) return access_error("read", index, offset, r);
  return {};
}

Result<void> KernelVfioDevice::region_write(uint32_t index, uint64_t offset,
                                            std::span<const uint8_t> data) {
  IOASIS_ASSIGN_OR_RETURN(VfioRegionInfo info, checked_region(index, offset, data.size()));
  if (!info.writable()) return Error(Errc::kInvalidArgument, name_ + ": region is not writable");
  ssize_t r = io_.pwrite(fd_.get(), data.data(), data.size(), info.mmap_offset + offset);
  if (r != static_cast<ssize_t>(data.size())) return access_error("write", index, offset, r);
  return {};
}

Result<MappedRegion> KernelVfioDevice::map_region(uint32_t index, uint64_t offset, uint64_t size) {
  IOASIS_ASSIGN_OR_RETURN(VfioRegionInfo info, region_info(index));
  bool inside = std::any_of(info.mmap_areas.begin(), info.mmap_areas.end(), [&](auto& a) {
    return offset >= a.offset && size <= a.size && offset - a.offset <= a.size - size;
  });
  if (!info.mmappable() || !inside || size == 0) {
    return Error(
        Errc::kInvalidArgument,
        fmt::format("{}: region {} cannot be mmapped at {:#x}+{:#x}", name_, index, offset, size));
  }
  int prot = (info.readable() ? PROT_READ : 0) | (info.writable() ? PROT_WRITE : 0);
  return io_.mmap(fd_.get(), info.mmap_offset + offset, size, prot);
}

Result<void> KernelVfioDevice::reset() {
  if (!(flags_ & VFIO_DEVICE_FLAGS_RESET)) {
    spdlog::debug("{}: no function reset offered; left as is", name_);
    return {};
  }
  IOASIS_TRY(device_ioctl(io_, fd_.get(), VFIO_DEVICE_RESET, nullptr, "VFIO_DEVICE_RESET", name_));
  return {};
}

std::optional<Error> KernelVfioDevice::failure() const {
  std::lock_guard lock(mu_);
  return failure_;
}

}  // namespace ioasis::devices
