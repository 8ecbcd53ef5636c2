// FAKE of the iommufd and VFIO uAPI for tests; see fake_kernel.h.
#include "iommu/testing/fake_kernel.h"

#include <cerrno>
#include <cstring>

#include "iommu/uapi/iommufd.h"

namespace ioasis::iommu::testing {
namespace {

constexpr uint64_t kPage = 4096;
constexpr uint64_t kIovaLimit = (uint64_t{1} << 48) - 1;  // the fake IOMMU's aperture

template <typename T>
bool short_struct(void* arg) {
  return *static_cast<uint32_t*>(arg) < sizeof(T);  // the size/argsz field comes first
}

int insert(FakeKernel::Mappings& m, uint64_t iova, uint64_t length, uint64_t va, uint32_t flags) {
  if (length == 0 || (iova | length | va) & (kPage - 1)) return -EINVAL;
  if (iova + (length - 1) < iova) return -EOVERFLOW;
  uint64_t last = iova + length - 1;
  if (last > kIovaLimit) return -EINVAL;
  auto it = m.upper_bound(last);
  if (it != m.begin() && std::prev(it)->second.last >= iova) return -EEXIST;
  m[iova] = FakeKernel::Mapping{last, va, flags};
  return 0;
}

// Removes the mappings inside [iova, last]; one that sticks out is `split_errno` and nothing is
// removed.
int remove(FakeKernel::Mappings& m, uint64_t iova, uint64_t last, uint64_t* removed,
           int split_errno) {
  auto begin = m.upper_bound(iova);
  if (begin != m.begin() && std::prev(begin)->second.last >= iova) --begin;
  auto end = begin;
  uint64_t bytes = 0;
  for (; end != m.end() && end->first <= last; ++end) {
    if (end->first < iova || end->second.last > last) return -split_errno;
    bytes += end->second.last - end->first + 1;
  }
  m.erase(begin, end);
  *removed = bytes;
  return 0;
}

}  // namespace

const FakeKernel::Entry FakeKernel::kTable[] = {
    {IOMMU_DESTROY, Kind::kIommufd, &FakeKernel::destroy},
    {IOMMU_IOAS_ALLOC, Kind::kIommufd, &FakeKernel::ioas_alloc},
    {IOMMU_IOAS_MAP, Kind::kIommufd, &FakeKernel::ioas_map},
    {IOMMU_IOAS_UNMAP, Kind::kIommufd, &FakeKernel::ioas_unmap},
    {IOMMU_IOAS_COPY, Kind::kIommufd, &FakeKernel::ioas_copy},
    {IOMMU_IOAS_IOVA_RANGES, Kind::kIommufd, &FakeKernel::ioas_iova_ranges},
    {VFIO_DEVICE_BIND_IOMMUFD, Kind::kCdev, &FakeKernel::bind_iommufd},
    {VFIO_DEVICE_ATTACH_IOMMUFD_PT, Kind::kCdev, &FakeKernel::attach_pt},
    {VFIO_DEVICE_DETACH_IOMMUFD_PT, Kind::kCdev, &FakeKernel::detach_pt},
    {VFIO_GET_API_VERSION, Kind::kContainer, &FakeKernel::get_api_version},
    {VFIO_CHECK_EXTENSION, Kind::kContainer, &FakeKernel::check_extension},
    {VFIO_GROUP_GET_STATUS, Kind::kGroup, &FakeKernel::group_status},
    {VFIO_GROUP_SET_CONTAINER, Kind::kGroup, &FakeKernel::set_container},
    {VFIO_GROUP_UNSET_CONTAINER, Kind::kGroup, &FakeKernel::unset_container},
    {VFIO_SET_IOMMU, Kind::kContainer, &FakeKernel::set_iommu},
    {VFIO_IOMMU_MAP_DMA, Kind::kContainer, &FakeKernel::map_dma},
    {VFIO_IOMMU_UNMAP_DMA, Kind::kContainer, &FakeKernel::unmap_dma},
    {VFIO_GROUP_GET_DEVICE_FD, Kind::kGroup, &FakeKernel::get_device_fd},
};

void FakeKernel::add_vfio_device(const std::string& cdev_path, int group, const std::string& name,
                                 std::shared_ptr<FakeVfioModel> model) {
  std::lock_guard lock(mu_);
  cdevs_[cdev_path] = Cdev{group, name, std::move(model), std::nullopt, std::nullopt};
  groups_.try_emplace(group);
}

int FakeKernel::open(const char* path, int) {
  std::lock_guard lock(mu_);
  std::string p(path);
  File f{Kind::kIommufd, p, next_fd_};
  if (p == "/dev/iommu") {
    f.kind = Kind::kIommufd;
  } else if (p == "/dev/vfio/vfio") {
    f.kind = Kind::kContainer;
    containers_[next_fd_];
  } else if (cdevs_.count(p)) {
    f.kind = Kind::kCdev;
  } else if (p.rfind("/dev/vfio/", 0) == 0 && groups_.count(std::atoi(p.c_str() + 10))) {
    f.kind = Kind::kGroup;
    f.group = std::atoi(p.c_str() + 10);
  } else {
    return -ENOENT;
  }
  files_[next_fd_] = f;
  return next_fd_++;
}

void FakeKernel::close(int fd) {
  std::lock_guard lock(mu_);
  auto it = files_.find(fd);
  if (it == files_.end()) return;
  if (it->second.kind == Kind::kContainer) {
    Container& c = containers_.at(fd);
    if (c.groups.empty()) {
      containers_.erase(fd);
    } else {
      c.fd_closed = true;
    }
  }
  if (it->second.kind == Kind::kGroup) drop_group_container(it->second.group);
  files_.erase(it);
}

// Closing the last reference to a group takes it out of its container, as the kernel does.
void FakeKernel::drop_group_container(int group) {
  auto& slot = groups_.at(group);
  if (!slot) return;
  Container& c = containers_.at(*slot);
  c.groups.erase(group);
  if (c.groups.empty()) {  // the last group takes the IOMMU and its mappings with it
    c.iommu_set = false;
    c.mappings.clear();
    if (c.fd_closed) containers_.erase(*slot);
  }
  slot.reset();
}

int FakeKernel::ioctl(int fd, unsigned long request, void* arg) {
  switch (request) {
    case VFIO_DEVICE_GET_INFO:
    case VFIO_DEVICE_GET_REGION_INFO:
    case VFIO_DEVICE_GET_IRQ_INFO:
    case VFIO_DEVICE_SET_IRQS:
    case VFIO_DEVICE_RESET: {
      bool is_device = false;
      std::shared_ptr<FakeVfioModel> model = device_model(fd, &is_device);
      if (!is_device) break;
      if (!model) return -EINVAL;  // an unbound cdev, or a device the test gave no model
      return device_ioctl(*model, request, arg);
    }
    default:
      break;
  }
  std::lock_guard lock(mu_);
  auto file = files_.find(fd);
  if (file == files_.end()) return -EBADF;
  for (const Entry& e : kTable) {
    if (e.request == request && e.kind == file->second.kind)
      return (this->*e.handler)(file->second, arg);
  }
  return -ENOTTY;
}

const FakeKernel::Mappings* FakeKernel::ioas_mappings(uint32_t ioas) const {
  std::lock_guard lock(mu_);
  auto it = ioas_.find(ioas);
  return it == ioas_.end() ? nullptr : &it->second.mappings;
}

std::optional<uint32_t> FakeKernel::attached_pt(const std::string& cdev_path) const {
  std::lock_guard lock(mu_);
  auto it = cdevs_.find(cdev_path);
  return it == cdevs_.end() ? std::nullopt : it->second.pt;
}

const FakeKernel::Mappings* FakeKernel::container_mappings(int container_fd) const {
  std::lock_guard lock(mu_);
  auto it = containers_.find(container_fd);
  return it == containers_.end() ? nullptr : &it->second.mappings;
}

std::optional<int> FakeKernel::group_container(int group) const {
  std::lock_guard lock(mu_);
  auto it = groups_.find(group);
  return it == groups_.end() ? std::nullopt : it->second;
}

// ---- iommufd ----

int FakeKernel::destroy(File&, void* arg) {
  if (short_struct<iommu_destroy>(arg)) return -EINVAL;
  auto* cmd = static_cast<iommu_destroy*>(arg);
  auto it = ioas_.find(cmd->id);
  if (it == ioas_.end()) return -ENOENT;
  if (it->second.attached > 0) return -EBUSY;
  ioas_.erase(it);
  return 0;
}

int FakeKernel::ioas_alloc(File&, void* arg) {
  if (short_struct<iommu_ioas_alloc>(arg)) return -EINVAL;
  auto* cmd = static_cast<iommu_ioas_alloc*>(arg);
  if (cmd->flags) return -EOPNOTSUPP;
  cmd->out_ioas_id = next_id_++;
  ioas_[cmd->out_ioas_id];
  return 0;
}

int FakeKernel::ioas_map(File&, void* arg) {
  if (short_struct<iommu_ioas_map>(arg)) return -EINVAL;
  auto* cmd = static_cast<iommu_ioas_map*>(arg);
  constexpr uint32_t kKnown =
      IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE;
  if ((cmd->flags & ~kKnown) || cmd->__reserved) return -EOPNOTSUPP;
  auto it = ioas_.find(cmd->ioas_id);
  if (it == ioas_.end()) return -ENOENT;
  Mappings& m = it->second.mappings;
  if (!(cmd->flags & IOMMU_IOAS_MAP_FIXED_IOVA)) {
    uint64_t iova = 0;  // first fit
    for (const auto& [first, e] : m) {
      if (first >= iova + cmd->length) break;
      iova = e.last + 1;
    }
    if (iova + cmd->length - 1 > kIovaLimit) return -ENOSPC;
    cmd->iova = iova;
  }
  return insert(m, cmd->iova, cmd->length, cmd->user_va, cmd->flags);
}

int FakeKernel::ioas_unmap(File&, void* arg) {
  if (short_struct<iommu_ioas_unmap>(arg)) return -EINVAL;
  auto* cmd = static_cast<iommu_ioas_unmap*>(arg);
  auto it = ioas_.find(cmd->ioas_id);
  if (it == ioas_.end()) return -ENOENT;
  uint64_t removed = 0;
  if (cmd->iova == 0 && cmd->length == UINT64_MAX) {  // unmap all: succeeds even when empty
    remove(it->second.mappings, 0, UINT64_MAX, &removed, ENOENT);
    cmd->length = removed;
    return 0;
  }
  if (cmd->length == 0) return -EINVAL;
  if (cmd->iova + (cmd->length - 1) < cmd->iova) return -EOVERFLOW;
  int r = remove(it->second.mappings, cmd->iova, cmd->iova + cmd->length - 1, &removed, ENOENT);
  if (r < 0) return r;
  if (removed == 0) return -ENOENT;
  cmd->length = removed;
  return 0;
}

int FakeKernel::ioas_copy(File&, void* arg) {
  if (short_struct<iommu_ioas_copy>(arg)) return -EINVAL;
  auto* cmd = static_cast<iommu_ioas_copy*>(arg);
  constexpr uint32_t kKnown =
      IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE | IOMMU_IOAS_MAP_READABLE;
  if (cmd->flags & ~kKnown) return -EOPNOTSUPP;
  if (!(cmd->flags & IOMMU_IOAS_MAP_FIXED_IOVA)) return -EOPNOTSUPP;  // not modelled
  auto src = ioas_.find(cmd->src_ioas_id);
  auto dst = ioas_.find(cmd->dst_ioas_id);
  if (src == ioas_.end() || dst == ioas_.end()) return -ENOENT;
  if (cmd->length == 0) return -EINVAL;
  // The source must be mapped without holes; the copy shares its pages.
  uint64_t cursor = cmd->src_iova, last = cmd->src_iova + cmd->length - 1;
  uint64_t va = 0;
  for (bool first = true;; first = false) {
    auto it = src->second.mappings.upper_bound(cursor);
    if (it == src->second.mappings.begin() || std::prev(it)->second.last < cursor) return -ENOENT;
    --it;
    if (first) va = it->second.va + (cursor - it->first);
    if (it->second.last >= last) break;
    cursor = it->second.last + 1;
  }
  int r = insert(dst->second.mappings, cmd->dst_iova, cmd->length, va, cmd->flags);
  if (r == 0) copies++;
  return r;
}

int FakeKernel::ioas_iova_ranges(File&, void* arg) {
  if (short_struct<iommu_ioas_iova_ranges>(arg)) return -EINVAL;
  auto* cmd = static_cast<iommu_ioas_iova_ranges*>(arg);
  if (!ioas_.count(cmd->ioas_id)) return -ENOENT;
  uint32_t have = cmd->num_iovas;
  cmd->num_iovas = 1;
  cmd->out_iova_alignment = kPage;
  if (have < 1) return -EMSGSIZE;
  auto* out = reinterpret_cast<iommu_iova_range*>(static_cast<uintptr_t>(cmd->allowed_iovas));
  out[0] = iommu_iova_range{0, kIovaLimit};
  return 0;
}

int FakeKernel::bind_iommufd(File& f, void* arg) {
  if (short_struct<vfio_device_bind_iommufd>(arg)) return -EINVAL;
  auto* cmd = static_cast<vfio_device_bind_iommufd*>(arg);
  if (cmd->flags) return -EINVAL;
  auto iommufd = files_.find(cmd->iommufd);
  if (iommufd == files_.end()) return -EBADF;
  if (iommufd->second.kind != Kind::kIommufd) return -EINVAL;
  Cdev& dev = cdevs_.at(f.path);
  if (dev.dev_id) return -EINVAL;  // bound already
  dev.dev_id = next_id_++;
  cmd->out_devid = *dev.dev_id;
  return 0;
}

int FakeKernel::attach_pt(File& f, void* arg) {
  if (short_struct<vfio_device_attach_iommufd_pt>(arg)) return -EINVAL;
  auto* cmd = static_cast<vfio_device_attach_iommufd_pt*>(arg);
  Cdev& dev = cdevs_.at(f.path);
  if (!dev.dev_id || cmd->flags) return -EINVAL;
  auto target = ioas_.find(cmd->pt_id);
  if (target == ioas_.end()) return -ENOENT;
  if (dev.pt) ioas_.at(*dev.pt).attached--;  // replacement
  target->second.attached++;
  dev.pt = cmd->pt_id;
  return 0;
}

int FakeKernel::detach_pt(File& f, void* arg) {
  if (short_struct<vfio_device_detach_iommufd_pt>(arg)) return -EINVAL;
  Cdev& dev = cdevs_.at(f.path);
  if (!dev.dev_id) return -EINVAL;
  if (dev.pt) ioas_.at(*dev.pt).attached--;
  dev.pt.reset();
  return 0;
}

// ---- VFIO type1 ----

int FakeKernel::get_api_version(File&, void*) { return VFIO_API_VERSION; }

int FakeKernel::check_extension(File&, void* arg) {
  auto ext = reinterpret_cast<uintptr_t>(arg);
  return ext == VFIO_TYPE1_IOMMU || ext == VFIO_TYPE1v2_IOMMU;
}

int FakeKernel::group_status(File& f, void* arg) {
  if (short_struct<vfio_group_status>(arg)) return -EINVAL;
  auto* st = static_cast<vfio_group_status*>(arg);
  st->flags = VFIO_GROUP_FLAGS_VIABLE;
  if (groups_.at(f.group)) st->flags |= VFIO_GROUP_FLAGS_CONTAINER_SET;
  return 0;
}

int FakeKernel::set_container(File& f, void* arg) {
  int cfd = *static_cast<int*>(arg);
  auto c = containers_.find(cfd);
  if (c == containers_.end()) return -EINVAL;
  auto& slot = groups_.at(f.group);
  if (slot) return -EBUSY;
  slot = cfd;
  c->second.groups.insert(f.group);
  return 0;
}

int FakeKernel::unset_container(File& f, void*) {
  if (!groups_.at(f.group)) return -EINVAL;
  for (const auto& [fd, file] : files_) {
    if (file.kind == Kind::kDevice && file.group == f.group) return -EBUSY;
  }
  drop_group_container(f.group);
  return 0;
}

int FakeKernel::get_device_fd(File& f, void* arg) {
  const auto& slot = groups_.at(f.group);
  if (!slot || !containers_.at(*slot).iommu_set) return -EINVAL;
  std::string name(static_cast<const char*>(arg));
  for (const auto& [path, dev] : cdevs_) {
    if (dev.group != f.group || dev.name != name) continue;
    files_[next_fd_] = File{Kind::kDevice, path, next_fd_, f.group};
    return next_fd_++;
  }
  return -ENODEV;
}

int FakeKernel::set_iommu(File& f, void* arg) {
  auto type = reinterpret_cast<uintptr_t>(arg);
  Container& c = containers_.at(f.fd);
  if (type != VFIO_TYPE1_IOMMU && type != VFIO_TYPE1v2_IOMMU) return -EINVAL;
  if (c.groups.empty()) return -EINVAL;  // a container needs a group before an IOMMU
  if (c.iommu_set) return -EBUSY;
  c.iommu_set = true;
  return 0;
}

int FakeKernel::map_dma(File& f, void* arg) {
  if (short_struct<vfio_iommu_type1_dma_map>(arg)) return -EINVAL;
  auto* cmd = static_cast<vfio_iommu_type1_dma_map*>(arg);
  Container& c = containers_.at(f.fd);
  if (!c.iommu_set) return -EINVAL;
  if (cmd->flags & ~(VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE)) return -EINVAL;
  return insert(c.mappings, cmd->iova, cmd->size, cmd->vaddr, cmd->flags);
}

int FakeKernel::unmap_dma(File& f, void* arg) {
  if (short_struct<vfio_iommu_type1_dma_unmap>(arg)) return -EINVAL;
  auto* cmd = static_cast<vfio_iommu_type1_dma_unmap*>(arg);
  Container& c = containers_.at(f.fd);
  if (!c.iommu_set) return -EINVAL;
  uint64_t removed = 0;
  if (cmd->flags & VFIO_DMA_UNMAP_FLAG_ALL) {
    if (cmd->iova || cmd->size) return -EINVAL;
    remove(c.mappings, 0, UINT64_MAX, &removed, EINVAL);
  } else {
    if (cmd->flags || cmd->size == 0) return -EINVAL;
    // type1v2 refuses to bisect a mapping.
    int r = remove(c.mappings, cmd->iova, cmd->iova + cmd->size - 1, &removed, EINVAL);
    if (r < 0) return r;
  }
  cmd->size = removed;
  return 0;
}

}  // namespace ioasis::iommu::testing
