// Runs a callback on the control loop each time an eventfd is signalled, until the watch is
// destroyed: how devices hear of doorbells and of signals from peers without a thread of their
// own.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <functional>
#include <memory>
#include <optional>

#include "base/fd.h"
#include "base/result.h"

namespace ioasis::devices {

// The callback gets the counter's value. Handlers hold a weak reference, so one that was already
// queued when the owner went away does nothing.
class EventfdWatch : public std::enable_shared_from_this<EventfdWatch> {
 public:
  using Callback = std::function<void(uint64_t count)>;

  // Watches a new eventfd of its own.
  static Result<std::shared_ptr<EventfdWatch>> start(boost::asio::io_context& io,
                                                     Callback on_signal);
  // Watches someone else's non-blocking eventfd, which must outlive the watch.
  static Result<std::shared_ptr<EventfdWatch>> watch(boost::asio::io_context& io, int eventfd,
                                                     Callback on_signal);

  int eventfd() const { return fd_; }

 private:
  EventfdWatch(boost::asio::io_context& io, int fd, int dup, Callback on_signal)
      : fd_(fd), watcher_(io, dup), on_signal_(std::move(on_signal)) {}
  void arm();

  std::optional<EventFd> own_;
  int fd_;
  boost::asio::posix::stream_descriptor watcher_;  // owns a duplicate of fd_
  Callback on_signal_;
};

}  // namespace ioasis::devices
