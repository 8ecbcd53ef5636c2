#include "devices/vfio/vfio_user_socket.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cstring>

#include "base/log.h"

namespace ioasis::devices::vfio_user {

namespace {

using Clock = std::chrono::steady_clock;

Result<sockaddr_un> unix_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return Error(Errc::kInvalidArgument, "socket path '" + path + "' is empty or too long");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

Result<UniqueFd> new_socket() {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error::from_errno("socket(AF_UNIX)");
  return UniqueFd(fd);
}

// Waits until `fd` is readable or `deadline` passes (no deadline: forever).
Result<void> wait_readable(int fd, std::optional<Clock::time_point> deadline) {
  for (;;) {
    int timeout = -1;
    if (deadline) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - Clock::now());
      timeout = static_cast<int>(std::max<int64_t>(0, left.count()));
    }
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, timeout);
    if (r > 0) return {};
    if (r == 0) return Error(Errc::kUnavailable, "timed out waiting for the peer");
    if (errno != EINTR) return Error::from_errno("poll");
  }
}

// Reads exactly `out.size()` bytes; the first read may also collect SCM_RIGHTS fds.
Result<void> read_exact(int fd, std::span<uint8_t> out, std::vector<UniqueFd>* fds,
                        std::optional<Clock::time_point> deadline) {
  size_t done = 0;
  while (done < out.size()) {
    IOASIS_TRY(wait_readable(fd, deadline));
    iovec iov{out.data() + done, out.size() - done};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxMsgFds)];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (fds) {
      msg.msg_control = control;
      msg.msg_controllen = sizeof(control);
    }
    ssize_t n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::from_errno("recvmsg");
    // Keep every fd that arrived, so none leaks even when the message is then rejected.
    for (cmsghdr* c = fds ? CMSG_FIRSTHDR(&msg) : nullptr; c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int received;
        std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        fds->emplace_back(received);
      }
    }
    if (fds && (msg.msg_flags & MSG_CTRUNC)) {
      return Error(Errc::kInvalidArgument,
                   "peer sent more than " + std::to_string(kMaxMsgFds) + " file descriptors");
    }
    if (n == 0) return Error(Errc::kUnavailable, "peer closed the connection");
    done += static_cast<size_t>(n);
  }
  return {};
}

}  // namespace

Result<void> check_header(const Header& header, uint32_t max_message_size) {
  if (header.msg_size < sizeof(Header) || header.msg_size > max_message_size) {
    return Error(Errc::kInvalidArgument, "message size " + std::to_string(header.msg_size) +
                                             " outside [16, " + std::to_string(max_message_size) +
                                             "]");
  }
  uint32_t type = header.flags & kFlagsTypeMask;
  if (type != kTypeCommand && type != kTypeReply) {
    return Error(Errc::kInvalidArgument, "message type " + std::to_string(type) + " is unknown");
  }
  return {};
}

Result<UniqueFd> listen_unix(const std::string& path) {
  IOASIS_ASSIGN_OR_RETURN(sockaddr_un addr, unix_address(path));
  IOASIS_ASSIGN_OR_RETURN(UniqueFd fd, new_socket());
  ::unlink(path.c_str());  // a stale socket from an earlier run blocks bind
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) {
    return Error::from_errno("bind " + path);
  }
  if (::listen(fd.get(), 4) < 0) return Error::from_errno("listen " + path);
  return fd;
}

Result<UniqueFd> connect_unix(const std::string& path) {
  IOASIS_ASSIGN_OR_RETURN(sockaddr_un addr, unix_address(path));
  IOASIS_ASSIGN_OR_RETURN(UniqueFd fd, new_socket());
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) {
    return Error::from_errno("connect " + path);
  }
  return fd;
}

Result<UniqueFd> accept_unix(int listen_fd, std::chrono::milliseconds timeout) {
  IOASIS_TRY(wait_readable(listen_fd, Clock::now() + timeout));
  int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) return Error::from_errno("accept");
  return UniqueFd(fd);
}

Result<void> send_message(int fd, const Header& header, std::span<const uint8_t> payload,
                          std::span<const int> fds) {
  if (fds.size() > kMaxMsgFds) {
    return Error(Errc::kInvalidArgument, "too many fds for one message");
  }
  iovec iov[2] = {{const_cast<Header*>(&header), sizeof(header)},
                  {const_cast<uint8_t*>(payload.data()), payload.size()}};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxMsgFds)] = {};
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = payload.empty() ? 1 : 2;
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  size_t total = sizeof(header) + payload.size();
  size_t sent = 0;
  while (sent < total) {
    ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::from_errno("sendmsg");
    sent += static_cast<size_t>(n);
    // A short send: continue with the rest, the fds have gone with the first part.
    msg.msg_control = nullptr;
    msg.msg_controllen = 0;
    size_t skip = static_cast<size_t>(n);
    while (msg.msg_iovlen > 0 && skip >= msg.msg_iov[0].iov_len) {
      skip -= msg.msg_iov[0].iov_len;
      ++msg.msg_iov;
      --msg.msg_iovlen;
    }
    if (msg.msg_iovlen > 0) {
      msg.msg_iov[0].iov_base = static_cast<uint8_t*>(msg.msg_iov[0].iov_base) + skip;
      msg.msg_iov[0].iov_len -= skip;
    }
  }
  return {};
}

Result<Message> receive_message(int fd, uint32_t max_message_size,
                                std::chrono::milliseconds rest_timeout) {
  Message m;
  IOASIS_TRY(read_exact(fd, {reinterpret_cast<uint8_t*>(&m.header), sizeof(Header)}, &m.fds,
                        std::nullopt));
  IOASIS_TRY(check_header(m.header, max_message_size));
  m.payload.resize(m.header.msg_size - sizeof(Header));
  IOASIS_TRY(read_exact(fd, m.payload, &m.fds, Clock::now() + rest_timeout));
  return m;
}

Connection::Connection(UniqueFd socket, std::string name, Handler handler, bool hangup_is_normal)
    : socket_(std::move(socket)),
      name_(std::move(name)),
      handler_(std::move(handler)),
      hangup_is_normal_(hangup_is_normal) {
  receiver_ = std::thread([this] { receive_loop(); });
}

Connection::~Connection() {
  closing_ = true;
  ::shutdown(socket_.get(), SHUT_RDWR);  // wakes the receiver out of recvmsg
  receiver_.join();
}

void Connection::fail(Error reason) { fail(std::move(reason), false); }

void Connection::fail(Error reason, bool quiet) {
  std::lock_guard lock(mu_);
  if (failure_) return;
  reason.context(name_);
  if (closing_ || quiet) {
    spdlog::info("{}", reason.message());
  } else {
    spdlog::error("{}", reason.message());
  }
  failure_ = std::move(reason);
  ::shutdown(socket_.get(), SHUT_RDWR);
  cv_.notify_all();
}

bool Connection::failed() const {
  std::lock_guard lock(mu_);
  return failure_.has_value();
}

std::optional<Error> Connection::failure() const {
  std::lock_guard lock(mu_);
  return failure_;
}

void Connection::wait_closed() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [&] { return failure_.has_value(); });
}

Result<void> Connection::send(const Header& header, std::span<const uint8_t> payload,
                              std::span<const int> fds) {
  std::lock_guard lock(send_mu_);
  return send_message(socket_.get(), header, payload, fds);
}

void Connection::receive_loop() {
  // Once a header has arrived the rest of the message must follow promptly.
  constexpr std::chrono::milliseconds kRestTimeout{5000};
  for (;;) {
    auto message = receive_message(socket_.get(), kMaxMessageSize, kRestTimeout);
    if (!message.ok()) {
      // A hang-up between requests is how a session ends, not a fault.
      bool idle_hangup;
      {
        std::lock_guard lock(mu_);
        idle_hangup =
            hangup_is_normal_ && !pending_ && message.error().code() == Errc::kUnavailable;
      }
      fail(std::move(message).error(), idle_hangup);
      return;
    }
    if (!message->is_reply()) {
      dispatch_command(*message);
      continue;
    }
    bool expected = false;
    {
      std::lock_guard lock(mu_);
      if (pending_ && pending_->msg_id == message->header.msg_id &&
          pending_->command == message->header.command) {
        expected = true;
        pending_.reset();
        reply_ = std::move(*message);
        cv_.notify_all();
      }
    }
    if (!expected) {
      fail(Error(Errc::kInvalidArgument, "unexpected reply (id " +
                                             std::to_string(message->header.msg_id) + ", " +
                                             command_name(message->header.command) + ")"));
      return;
    }
  }
}

void Connection::dispatch_command(Message& message) {
  Reply reply = handler_ ? handler_(message) : Reply::failure(ENOTSUP);
  if (message.header.flags & kFlagNoReply) return;
  Header h{};
  h.msg_id = message.header.msg_id;
  h.command = message.header.command;
  h.flags = kTypeReply;
  if (reply.error != 0) {
    h.flags |= kFlagError;
    h.error = reply.error;
    reply.payload.clear();  // the spec: an error reply is the header alone
    reply.fds.clear();
  }
  h.msg_size = static_cast<uint32_t>(sizeof(Header) + reply.payload.size());
  auto sent = send(h, reply.payload, reply.fds);
  if (!sent.ok()) fail(std::move(sent).error().context("sending a reply"));
}

Result<Message> Connection::call(Command command, std::span<const uint8_t> payload,
                                 std::span<const int> fds, std::chrono::milliseconds timeout) {
  std::lock_guard call_lock(call_mu_);
  Header h{};
  h.command = static_cast<uint16_t>(command);
  h.flags = kTypeCommand;
  h.msg_size = static_cast<uint32_t>(sizeof(Header) + payload.size());
  {
    std::lock_guard lock(mu_);
    if (failure_) return *failure_;
    h.msg_id = next_msg_id_++;
    pending_ = h;
    reply_.reset();
  }
  auto sent = send(h, payload, fds);
  if (!sent.ok()) {
    fail(std::move(sent).error().context(std::string("sending ") + command_name(h.command)));
  }
  std::unique_lock lock(mu_);
  bool done = cv_.wait_for(lock, timeout, [&] { return reply_.has_value() || failure_; });
  if (!done) {
    pending_.reset();
    lock.unlock();
    fail(Error(Errc::kUnavailable, std::string("no reply to ") + command_name(h.command) +
                                       " within " + std::to_string(timeout.count()) + " ms"));
    lock.lock();
  }
  if (!reply_) return *failure_;
  Message reply = std::move(*reply_);
  reply_.reset();
  if (reply.header.flags & kFlagError) {
    int err = static_cast<int>(reply.header.error);
    return Error(Errc::kIo,
                 name_ + ": " + command_name(h.command) + " refused: " + std::strerror(err), err);
  }
  return reply;
}

const char* command_name(uint16_t command) {
  switch (static_cast<Command>(command)) {
    case Command::kVersion:
      return "VERSION";
    case Command::kDmaMap:
      return "DMA_MAP";
    case Command::kDmaUnmap:
      return "DMA_UNMAP";
    case Command::kDeviceGetInfo:
      return "DEVICE_GET_INFO";
    case Command::kDeviceGetRegionInfo:
      return "DEVICE_GET_REGION_INFO";
    case Command::kDeviceGetRegionIoFds:
      return "DEVICE_GET_REGION_IO_FDS";
    case Command::kDeviceGetIrqInfo:
      return "DEVICE_GET_IRQ_INFO";
    case Command::kDeviceSetIrqs:
      return "DEVICE_SET_IRQS";
    case Command::kRegionRead:
      return "REGION_READ";
    case Command::kRegionWrite:
      return "REGION_WRITE";
    case Command::kDmaRead:
      return "DMA_READ";
    case Command::kDmaWrite:
      return "DMA_WRITE";
    case Command::kDeviceReset:
      return "DEVICE_RESET";
    case Command::kDirtyPages:
      return "DIRTY_PAGES";
  }
  return "unknown command";
}

}  // namespace ioasis::devices::vfio_user
