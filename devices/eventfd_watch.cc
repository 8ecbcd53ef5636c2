#include "devices/eventfd_watch.h"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

namespace ioasis::devices {

Result<std::shared_ptr<EventfdWatch>> EventfdWatch::start(boost::asio::io_context& io,
                                                          Callback on_signal) {
  IOASIS_ASSIGN_OR_RETURN(EventFd fd, EventFd::create(EFD_NONBLOCK | EFD_CLOEXEC));
  IOASIS_ASSIGN_OR_RETURN(auto w, watch(io, fd.fd(), std::move(on_signal)));
  w->own_.emplace(std::move(fd));
  return w;
}

Result<std::shared_ptr<EventfdWatch>> EventfdWatch::watch(boost::asio::io_context& io, int eventfd,
                                                          Callback on_signal) {
  int dup = ::fcntl(eventfd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return Error::from_errno("dup of an eventfd");
  std::shared_ptr<EventfdWatch> w(new EventfdWatch(io, eventfd, dup, std::move(on_signal)));
  w->arm();
  return w;
}

void EventfdWatch::arm() {
  std::weak_ptr<EventfdWatch> weak = weak_from_this();
  watcher_.async_wait(boost::asio::posix::stream_descriptor::wait_read, [weak](auto ec) {
    if (ec) return;
    auto self = weak.lock();
    if (!self) return;
    uint64_t count = 0;
    if (::read(self->fd_, &count, sizeof(count)) == sizeof(count) && count) {
      self->on_signal_(count);
    }
    self->arm();
  });
}

}  // namespace ioasis::devices
