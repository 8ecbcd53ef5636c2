#include "iommu/backends/kernel_io.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>

namespace ioasis::iommu {
namespace {

class SystemKernelIo final : public KernelIo {
 public:
  int open(const char* path, int flags) override {
    int fd = ::open(path, flags | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
  }
  int ioctl(int fd, unsigned long request, void* arg) override {
    int r = ::ioctl(fd, request, arg);
    return r < 0 ? -errno : r;
  }
  void close(int fd) override { ::close(fd); }
  ssize_t pread(int fd, void* buf, size_t count, uint64_t offset) override {
    ssize_t r = ::pread(fd, buf, count, static_cast<off_t>(offset));
    return r < 0 ? -errno : r;
  }
  ssize_t pwrite(int fd, const void* buf, size_t count, uint64_t offset) override {
    ssize_t r = ::pwrite(fd, buf, count, static_cast<off_t>(offset));
    return r < 0 ? -errno : r;
  }
  Result<MappedRegion> mmap(int fd, uint64_t offset, size_t length, int prot) override {
    return MappedRegion::map(length, prot, MAP_SHARED, fd, static_cast<off_t>(offset));
  }
};

}  // namespace

KernelIo& KernelIo::system() {
  static SystemKernelIo io;
  return io;
}

Result<KernelFd> open_kernel_fd(KernelIo& io, const std::string& path, int flags) {
  int fd = io.open(path.c_str(), flags);
  if (fd < 0) return Error::from_errno("open " + path, -fd);
  return KernelFd(&io, fd);
}

Result<int> kernel_ioctl(KernelIo& io, int fd, unsigned long request, void* arg, const char* what) {
  int r = io.ioctl(fd, request, arg);
  if (r < 0) return Error::from_errno(what, -r);
  return r;
}

}  // namespace ioasis::iommu
