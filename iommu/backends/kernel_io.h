// Every system call the kernel DMA backends make goes through KernelIo, so that tests can put a
// fake of the uAPI (iommu/testing/fake_kernel.h) where the kernel would be.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>

#include "base/fd.h"
#include "base/result.h"

namespace ioasis::iommu {

class KernelIo {
 public:
  virtual ~KernelIo() = default;
  // Each returns what the system call returns, or -errno.
  virtual int open(const char* path, int flags) = 0;
  virtual int ioctl(int fd, unsigned long request, void* arg) = 0;
  virtual void close(int fd) = 0;
  // Region access on a VFIO device fd: `offset` is the region's offset from
  // VFIO_DEVICE_GET_REGION_INFO plus the offset inside the region.
  virtual ssize_t pread(int fd, void* buf, size_t count, uint64_t offset) = 0;
  virtual ssize_t pwrite(int fd, const void* buf, size_t count, uint64_t offset) = 0;
  // A shared mapping of `length` bytes of `fd` at `offset`.
  virtual Result<MappedRegion> mmap(int fd, uint64_t offset, size_t length, int prot) = 0;

  // The real kernel.
  static KernelIo& system();
};

// An fd opened through a KernelIo and closed through it.
class KernelFd {
 public:
  KernelFd() = default;
  KernelFd(KernelIo* io, int fd) : io_(io), fd_(fd) {}
  KernelFd(KernelFd&& o) noexcept : io_(o.io_), fd_(std::exchange(o.fd_, -1)) {}
  KernelFd& operator=(KernelFd&& o) noexcept {
    if (this != &o) {
      reset();
      io_ = o.io_;
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  KernelFd(const KernelFd&) = delete;
  KernelFd& operator=(const KernelFd&) = delete;
  ~KernelFd() { reset(); }

  int get() const { return fd_; }
  void reset() {
    if (fd_ >= 0) io_->close(fd_);
    fd_ = -1;
  }

 private:
  KernelIo* io_ = nullptr;
  int fd_ = -1;
};

Result<KernelFd> open_kernel_fd(KernelIo& io, const std::string& path, int flags);
// Runs an ioctl and turns -errno into an Error that names `what`.
Result<int> kernel_ioctl(KernelIo& io, int fd, unsigned long request, void* arg, const char* what);

}  // namespace ioasis::iommu
