#include "base/fd.h"

#include <fcntl.h>
#include <sys/eventfd.h>

namespace ioasis {

Result<UniqueFd> UniqueFd::dup() const {
  int fd = ::fcntl(fd_, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return Error::from_errno("dup");
  return UniqueFd(fd);
}

Result<MappedRegion> MappedRegion::map(size_t size, int prot, int flags, int fd, off_t offset) {
  void* addr = ::mmap(nullptr, size, prot, flags, fd, offset);
  if (addr == MAP_FAILED) return Error::from_errno("mmap of " + std::to_string(size) + " bytes");
  return MappedRegion(addr, size);
}

Result<EventFd> EventFd::create(unsigned flags) {
  int fd = ::eventfd(0, EFD_CLOEXEC | flags);
  if (fd < 0) return Error::from_errno("eventfd");
  return EventFd(UniqueFd(fd));
}

Result<void> EventFd::signal(uint64_t n) const {
  if (::write(fd_.get(), &n, sizeof(n)) != sizeof(n)) return Error::from_errno("eventfd write");
  return {};
}

Result<uint64_t> EventFd::consume() const {
  uint64_t n = 0;
  ssize_t r = ::read(fd_.get(), &n, sizeof(n));
  if (r == sizeof(n)) return n;
  if (r < 0 && errno == EAGAIN) return uint64_t{0};
  return Error::from_errno("eventfd read");
}

}  // namespace ioasis
