#include "iommu/backends/kernel_io.h"

#include <fcntl.h>
#include <sys/ioctl.h>
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
