// A FAKE of the Linux iommufd and VFIO uAPI, at the ioctl boundary, for tests on machines without
// /dev/iommu or /dev/vfio. It is not the kernel: it models just the state the uAPI documents
// (IOASes and their mappings, bound and attached device cdevs, VFIO groups and type1 containers)
// and answers each ioctl from a table of handlers that apply the documented argument rules and
// return the documented errno (EINVAL for short structs or bad fields, EOPNOTSUPP for unknown
// flags, ENOENT for unknown ids or unmapped ranges, EEXIST for overlapping fixed maps, EBUSY for
// destroying an IOAS a device is attached to, EMSGSIZE for short output arrays).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>

#include "iommu/backends/kernel_io.h"

namespace ioasis::iommu::testing {

class FakeKernel final : public KernelIo {
 public:
  struct Mapping {
    uint64_t last;
    uint64_t va;
    uint32_t flags;
  };
  using Mappings = std::map<uint64_t, Mapping>;

  // A VFIO device: its cdev (/dev/vfio/devices/vfioN) and its group (/dev/vfio/N).
  void add_vfio_device(const std::string& cdev_path, int group);

  int open(const char* path, int flags) override;
  int ioctl(int fd, unsigned long request, void* arg) override;
  void close(int fd) override;

  size_t open_fds() const { return files_.size(); }
  size_t ioas_count() const { return ioas_.size(); }
  const Mappings* ioas_mappings(uint32_t ioas) const;
  // The kernel IOAS a device cdev is attached to.
  std::optional<uint32_t> attached_pt(const std::string& cdev_path) const;
  const Mappings* container_mappings(int container_fd) const;
  std::optional<int> group_container(int group) const;
  int copies = 0;

 private:
  enum class Kind { kIommufd, kContainer, kGroup, kCdev };
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
    std::optional<uint32_t> dev_id;
    std::optional<uint32_t> pt;
  };
  struct Container {
    std::set<int> groups;
    bool iommu_set = false;
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

  std::map<int, File> files_;
  int next_fd_ = 1000;
  std::map<uint32_t, Ioas> ioas_;
  uint32_t next_id_ = 1;
  std::map<std::string, Cdev> cdevs_;
  std::map<int, std::optional<int>> groups_;  // group -> container fd
  std::map<int, Container> containers_;
};

}  // namespace ioasis::iommu::testing
