// A FAKE of the Linux iommufd and VFIO uAPI, at the ioctl boundary, for tests on machines without
// /dev/iommu or /dev/vfio. It is not the kernel: it models just the state the uAPI documents
// (IOASes and their mappings, bound and attached device cdevs, VFIO groups and type1 containers)
// and answers each ioctl from a table of handlers that apply the documented argument rules and
// return the documented errno (EINVAL for short structs or bad fields, EOPNOTSUPP for unknown
// flags, ENOENT for unknown ids or unmapped ranges, EEXIST for overlapping fixed maps, EBUSY for
// destroying an IOAS a device is attached to, EMSGSIZE for short output arrays).
//
// Behind each device fd (a bound cdev, or one from VFIO_GROUP_GET_DEVICE_FD) a FakeVfioModel the
// test supplies answers the device ioctls, region reads and writes and mmap; the device's DMA
// goes through dma(), which translates through the IOMMU state the fake keeps for it (the kernel
// IOAS its cdev is attached to, or its group's container) and fails for an unmapped IOVA.
// The fake also enforces the VFIO rules that shape the backends: VFIO_GROUP_GET_DEVICE_FD needs
// the group in a container with an IOMMU (else EINVAL), VFIO_GROUP_UNSET_CONTAINER fails with
// EBUSY while a device fd of the group is open, and a cdev answers device ioctls only once bound.
#pragma once

#include <linux/vfio.h>

#include <cerrno>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "iommu/backends/kernel_io.h"

namespace ioasis::iommu::testing {

// The device behind a FAKE VFIO device fd. Each call returns 0 or -errno.
class FakeVfioModel {
 public:
  struct Region {
    uint64_t size = 0;   // 0: the device has no such region
    uint32_t flags = 0;  // VFIO_REGION_INFO_FLAG_READ / WRITE / MMAP
    // Reported through the sparse-mmap capability when not empty.
    std::vector<vfio_region_sparse_mmap_area> sparse;
    int mmap_fd = -1;  // what an mmap of the region maps (at the same offset)
  };
  virtual ~FakeVfioModel() = default;
  virtual uint32_t device_flags() const { return VFIO_DEVICE_FLAGS_PCI | VFIO_DEVICE_FLAGS_RESET; }
  virtual Region region(uint32_t index) const = 0;
  // Only `flags` and `count` are used; count 0: no such IRQ.
  virtual vfio_irq_info irq(uint32_t index) const = 0;
  virtual int read(uint32_t index, uint64_t offset, std::span<uint8_t> data) = 0;
  virtual int write(uint32_t index, uint64_t offset, std::span<const uint8_t> data) = 0;
  // Eventfds for vectors start.. of `index` (-1 disconnects one); empty disconnects them all.
  // The fds stay the caller's: the model dups what it keeps, as the kernel takes a reference.
  virtual int set_irqs(uint32_t index, uint32_t start, std::span<const int> eventfds) = 0;
  // ACTION_UNMASK of vector 0 of a maskable `index`: now (nullopt), or whenever `eventfd` is
  // signalled from now on (-1 stops that). The eventfd stays the caller's, as in set_irqs.
  virtual int unmask(uint32_t index, std::optional<int> eventfd) {
    (void)index, (void)eventfd;
    return -EINVAL;
  }
  virtual int reset() = 0;
};

class FakeKernel final : public KernelIo {
 public:
  struct Mapping {
    uint64_t last;
    uint64_t va;
    uint32_t flags;
  };
  using Mappings = std::map<uint64_t, Mapping>;
  // One IOVA window a device can reach, with what it may do there.
  struct DmaWindow {
    uint64_t iova;
    uint64_t last;
    uint64_t va;
    bool read;
    bool write;
  };

  // The fake places regions at index << 40 in the device fd, as vfio-pci does.
  static constexpr int kRegionShift = 40;

  // A VFIO device: its cdev (/dev/vfio/devices/vfioN), its group (/dev/vfio/N), its name in that
  // group for VFIO_GROUP_GET_DEVICE_FD (the PCI address), and what answers behind its device fd.
  void add_vfio_device(const std::string& cdev_path, int group, const std::string& name = "",
                       std::shared_ptr<FakeVfioModel> model = nullptr);

  int open(const char* path, int flags) override;
  int ioctl(int fd, unsigned long request, void* arg) override;
  void close(int fd) override;
  ssize_t pread(int fd, void* buf, size_t count, uint64_t offset) override;
  ssize_t pwrite(int fd, const void* buf, size_t count, uint64_t offset) override;
  Result<MappedRegion> mmap(int fd, uint64_t offset, size_t length, int prot) override;

  // Device DMA of the device at `cdev_path`: 0, or -EFAULT when [iova, iova+size) is not all
  // mapped with the access wanted.
  int dma(const std::string& cdev_path, uint64_t iova, std::span<uint8_t> data, bool write);
  std::vector<DmaWindow> dma_windows(const std::string& cdev_path) const;

  size_t open_fds() const { return files_.size(); }
  size_t ioas_count() const { return ioas_.size(); }
  const Mappings* ioas_mappings(uint32_t ioas) const;
  // The kernel IOAS a device cdev is attached to.
  std::optional<uint32_t> attached_pt(const std::string& cdev_path) const;
  const Mappings* container_mappings(int container_fd) const;
  std::optional<int> group_container(int group) const;
  int copies = 0;

 private:
  // kDevice: a device fd from VFIO_GROUP_GET_DEVICE_FD; its path is the device's cdev.
  enum class Kind { kIommufd, kContainer, kGroup, kCdev, kDevice };
  struct File {
    Kind kind;
    std::string path;
    int fd = -1;
    int group = -1;
  };
  struct Ioas {
    Mappings mappings;
    int attached = 0;
  };
  struct Cdev {
    int group;
    std::string name;
    std::shared_ptr<FakeVfioModel> model;
    std::optional<uint32_t> dev_id;
    std::optional<uint32_t> pt;
  };
  struct Container {
    std::set<int> groups;
    bool iommu_set = false;
    bool fd_closed = false;  // the groups set into it keep it alive
    Mappings mappings;
  };
  using Handler = int (FakeKernel::*)(File&, void*);
  struct Entry {
    unsigned long request;
    Kind kind;
    Handler handler;
  };
  static const Entry kTable[];

  int destroy(File&, void*);
  int ioas_alloc(File&, void*);
  int ioas_map(File&, void*);
  int ioas_unmap(File&, void*);
  int ioas_copy(File&, void*);
  int ioas_iova_ranges(File&, void*);
  int bind_iommufd(File&, void*);
  int attach_pt(File&, void*);
  int detach_pt(File&, void*);
  int get_api_version(File&, void*);
  int check_extension(File&, void*);
  int group_status(File&, void*);
  int set_container(File&, void*);
  int unset_container(File&, void*);
  int set_iommu(File&, void*);
  int map_dma(File&, void*);
  int unmap_dma(File&, void*);
  int get_device_fd(File&, void*);
  void drop_group_container(int group);

  // Device fds (fake_kernel_device.cc): answered by the model without holding mu_, so that a
  // model may DMA from another thread while it works.
  std::shared_ptr<FakeVfioModel> device_model(int fd, bool* is_device);
  ssize_t region_access(int fd, uint64_t offset, size_t count, bool write,
                        const std::function<int(FakeVfioModel&, uint32_t, uint64_t)>& op);
  int device_ioctl(FakeVfioModel& model, unsigned long request, void* arg);

  mutable std::recursive_mutex mu_;

  std::map<int, File> files_;
  int next_fd_ = 1000;
  std::map<uint32_t, Ioas> ioas_;
  uint32_t next_id_ = 1;
  std::map<std::string, Cdev> cdevs_;
  std::map<int, std::optional<int>> groups_;  // group -> container fd
  std::map<int, Container> containers_;
};

}  // namespace ioasis::iommu::testing
