// FAKE of the VFIO device fd (device ioctls, region access, mmap) and of device DMA through the
// fake IOMMU state; see fake_kernel.h.
#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "iommu/testing/fake_kernel.h"
#include "iommu/uapi/iommufd.h"

namespace ioasis::iommu::testing {
namespace {

constexpr uint64_t kRegionMask = (uint64_t{1} << FakeKernel::kRegionShift) - 1;
constexpr uint32_t kIrqSetKnown = VFIO_IRQ_SET_DATA_TYPE_MASK | VFIO_IRQ_SET_ACTION_TYPE_MASK;

template <typename T>
bool short_arg(void* arg, size_t minsz = sizeof(T)) {
  return *static_cast<uint32_t*>(arg) < minsz;  // argsz comes first
}

// The region info with its sparse-mmap capability, as vfio-pci lays it out: the capability right
// after the struct when argsz leaves room for it; otherwise argsz grows to what is needed and
// cap_offset stays 0, so that the caller asks again.
int region_info(FakeVfioModel& model, void* arg) {
  if (short_arg<vfio_region_info>(arg)) return -EINVAL;
  auto* info = static_cast<vfio_region_info*>(arg);
  if (info->index >= VFIO_PCI_NUM_REGIONS) return -EINVAL;
  FakeVfioModel::Region r = model.region(info->index);
  info->flags = r.size ? r.flags : 0;
  info->size = r.size;
  info->offset = uint64_t{info->index} << FakeKernel::kRegionShift;
  info->cap_offset = 0;
  if (r.sparse.empty() || !(r.flags & VFIO_REGION_INFO_FLAG_MMAP)) return 0;
  size_t cap_size = sizeof(vfio_region_info_cap_sparse_mmap) +
                    r.sparse.size() * sizeof(vfio_region_sparse_mmap_area);
  info->flags |= VFIO_REGION_INFO_FLAG_CAPS;
  if (info->argsz < sizeof(vfio_region_info) + cap_size) {
    info->argsz = static_cast<uint32_t>(sizeof(vfio_region_info) + cap_size);
    return 0;
  }
  auto* cap = reinterpret_cast<vfio_region_info_cap_sparse_mmap*>(info + 1);
  cap->header = vfio_info_cap_header{VFIO_REGION_INFO_CAP_SPARSE_MMAP, 1, 0};
  cap->nr_areas = static_cast<uint32_t>(r.sparse.size());
  cap->reserved = 0;
  std::memcpy(cap->areas, r.sparse.data(), r.sparse.size() * sizeof(r.sparse[0]));
  info->cap_offset = sizeof(vfio_region_info);
  return 0;
}

// Unmasking is for maskable IRQs (INTx) and vector 0 only, as vfio-pci allows it.
int unmask(FakeVfioModel& model, const vfio_irq_set& set, const vfio_irq_info& irq) {
  if (!(irq.flags & VFIO_IRQ_INFO_MASKABLE) || set.start != 0 || set.count != 1) return -EINVAL;
  switch (set.flags & VFIO_IRQ_SET_DATA_TYPE_MASK) {
    case VFIO_IRQ_SET_DATA_NONE:
      return model.unmask(set.index, std::nullopt);
    case VFIO_IRQ_SET_DATA_EVENTFD: {
      if (set.argsz < sizeof(vfio_irq_set) + sizeof(int32_t)) return -EINVAL;
      int32_t fd;
      std::memcpy(&fd, set.data, sizeof(fd));
      return model.unmask(set.index, fd);
    }
    default:
      return -EINVAL;
  }
}

int set_irqs(FakeVfioModel& model, void* arg) {
  if (short_arg<vfio_irq_set>(arg)) return -EINVAL;
  auto* set = static_cast<vfio_irq_set*>(arg);
  if (set->flags & ~kIrqSetKnown) return -EINVAL;
  uint32_t data = set->flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
  uint32_t action = set->flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
  vfio_irq_info irq = model.irq(set->index);
  if (irq.count == 0) return -EINVAL;
  if (action == VFIO_IRQ_SET_ACTION_UNMASK) return unmask(model, *set, irq);
  if (action != VFIO_IRQ_SET_ACTION_TRIGGER) return -EINVAL;  // MASK is not modelled
  if (data == VFIO_IRQ_SET_DATA_NONE && set->count == 0) return model.set_irqs(set->index, 0, {});
  if (data != VFIO_IRQ_SET_DATA_EVENTFD) return -EINVAL;
  if (set->start >= irq.count || set->count > irq.count - set->start) return -EINVAL;
  if (set->argsz < sizeof(vfio_irq_set) + set->count * sizeof(int32_t)) return -EINVAL;
  std::vector<int> fds(set->count);
  std::memcpy(fds.data(), set->data, fds.size() * sizeof(int32_t));
  return model.set_irqs(set->index, set->start, fds);
}

}  // namespace

std::shared_ptr<FakeVfioModel> FakeKernel::device_model(int fd, bool* is_device) {
  std::lock_guard lock(mu_);
  *is_device = false;
  auto file = files_.find(fd);
  if (file == files_.end()) return nullptr;
  if (file->second.kind != Kind::kCdev && file->second.kind != Kind::kDevice) return nullptr;
  *is_device = true;
  const Cdev& dev = cdevs_.at(file->second.path);
  // A cdev is a device fd only once bound to an iommufd.
  if (file->second.kind == Kind::kCdev && !dev.dev_id) return nullptr;
  return dev.model;
}

int FakeKernel::device_ioctl(FakeVfioModel& model, unsigned long request, void* arg) {
  switch (request) {
    case VFIO_DEVICE_GET_INFO: {
      if (short_arg<vfio_device_info>(arg, offsetof(vfio_device_info, cap_offset))) return -EINVAL;
      auto* info = static_cast<vfio_device_info*>(arg);
      info->flags = model.device_flags();
      info->num_regions = VFIO_PCI_NUM_REGIONS;
      info->num_irqs = VFIO_PCI_NUM_IRQS;
      return 0;
    }
    case VFIO_DEVICE_GET_REGION_INFO:
      return region_info(model, arg);
    case VFIO_DEVICE_GET_IRQ_INFO: {
      if (short_arg<vfio_irq_info>(arg)) return -EINVAL;
      auto* info = static_cast<vfio_irq_info*>(arg);
      if (info->index >= VFIO_PCI_NUM_IRQS) return -EINVAL;
      vfio_irq_info m = model.irq(info->index);
      info->flags = m.flags;
      info->count = m.count;
      return 0;
    }
    case VFIO_DEVICE_SET_IRQS:
      return set_irqs(model, arg);
    case VFIO_DEVICE_RESET:
      if (!(model.device_flags() & VFIO_DEVICE_FLAGS_RESET)) return -EINVAL;
      return model.reset();
    default:
      return -ENOTTY;
  }
}

// Region access at `offset` (region index << kRegionShift | offset in the region), within the
// region and as its flags allow.
ssize_t FakeKernel::region_access(
    int fd, uint64_t offset, size_t count, bool write,
    const std::function<int(FakeVfioModel&, uint32_t, uint64_t)>& op) {
  bool is_device = false;
  std::shared_ptr<FakeVfioModel> model = device_model(fd, &is_device);
  if (!model) return is_device ? -EINVAL : -EBADF;
  auto index = static_cast<uint32_t>(offset >> kRegionShift);
  uint64_t at = offset & kRegionMask;
  FakeVfioModel::Region r = model->region(index);
  uint32_t allowed = write ? VFIO_REGION_INFO_FLAG_WRITE : VFIO_REGION_INFO_FLAG_READ;
  if (!(r.flags & allowed) || at >= r.size || count > r.size - at) return -EINVAL;
  int rc = op(*model, index, at);
  return rc < 0 ? rc : static_cast<ssize_t>(count);
}

ssize_t FakeKernel::pread(int fd, void* buf, size_t count, uint64_t offset) {
  return region_access(fd, offset, count, false,
                       [&](FakeVfioModel& m, uint32_t index, uint64_t at) {
                         return m.read(index, at, {static_cast<uint8_t*>(buf), count});
                       });
}

ssize_t FakeKernel::pwrite(int fd, const void* buf, size_t count, uint64_t offset) {
  return region_access(fd, offset, count, true, [&](FakeVfioModel& m, uint32_t index, uint64_t at) {
    return m.write(index, at, {static_cast<const uint8_t*>(buf), count});
  });
}

Result<MappedRegion> FakeKernel::mmap(int fd, uint64_t offset, size_t length, int prot) {
  bool is_device = false;
  std::shared_ptr<FakeVfioModel> model = device_model(fd, &is_device);
  if (!model) return Error::from_errno("mmap of a fake VFIO fd", is_device ? EINVAL : EBADF);
  auto index = static_cast<uint32_t>(offset >> kRegionShift);
  uint64_t at = offset & kRegionMask;
  FakeVfioModel::Region r = model->region(index);
  if (!(r.flags & VFIO_REGION_INFO_FLAG_MMAP) || r.mmap_fd < 0 || at >= r.size ||
      length > r.size - at) {
    return Error::from_errno("mmap of a fake VFIO region", EINVAL);
  }
  return MappedRegion::map(length, prot, MAP_SHARED, r.mmap_fd, static_cast<off_t>(at));
}

std::vector<FakeKernel::DmaWindow> FakeKernel::dma_windows(const std::string& cdev_path) const {
  std::lock_guard lock(mu_);
  std::vector<DmaWindow> out;
  auto dev = cdevs_.find(cdev_path);
  if (dev == cdevs_.end()) return out;
  // The IOMMU translates per group: a device reaches the page table a sibling of its group is
  // attached to, attached itself or not. (That is why siblings may not be split.)
  std::optional<uint32_t> pt = dev->second.pt;
  for (const auto& [path, other] : cdevs_) {
    if (!pt && other.group == dev->second.group) pt = other.pt;
  }
  if (pt) {
    for (const auto& [iova, m] : ioas_.at(*pt).mappings) {
      out.push_back({iova, m.last, m.va, (m.flags & IOMMU_IOAS_MAP_READABLE) != 0,
                     (m.flags & IOMMU_IOAS_MAP_WRITEABLE) != 0});
    }
    return out;
  }
  auto slot = groups_.find(dev->second.group);
  if (slot == groups_.end() || !slot->second) return out;
  const Container& c = containers_.at(*slot->second);
  if (!c.iommu_set) return out;
  for (const auto& [iova, m] : c.mappings) {
    out.push_back({iova, m.last, m.va, (m.flags & VFIO_DMA_MAP_FLAG_READ) != 0,
                   (m.flags & VFIO_DMA_MAP_FLAG_WRITE) != 0});
  }
  return out;
}

int FakeKernel::dma(const std::string& cdev_path, uint64_t iova, std::span<uint8_t> data,
                    bool write) {
  std::lock_guard lock(mu_);
  std::vector<DmaWindow> windows = dma_windows(cdev_path);
  uint64_t done = 0;
  while (done < data.size()) {
    uint64_t at = iova + done;
    if (at < iova) return -EFAULT;
    const DmaWindow* w = nullptr;
    for (const DmaWindow& c : windows) {
      if (c.iova <= at && at <= c.last) w = &c;
    }
    if (!w || !(write ? w->write : w->read)) return -EFAULT;
    uint64_t n = std::min<uint64_t>(data.size() - done, w->last - at + 1);
    auto* host = reinterpret_cast<uint8_t*>(static_cast<uintptr_t>(w->va + (at - w->iova)));
    if (write) {
      std::memcpy(host, data.data() + done, n);
    } else {
      std::memcpy(data.data() + done, host, n);
    }
    done += n;
  }
  return 0;
}

}  // namespace ioasis::iommu::testing
