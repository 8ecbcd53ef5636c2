#include "devices/legacy/serial_output.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

#include "base/log.h"

namespace ioasis::devices {
namespace {

// How long a write waits for a slow socket client before dropping the rest of the output: the
// caller is a vCPU, which must not hang on a reader that stopped reading.
constexpr int kClientWriteTimeoutMs = 100;

// Writes all of `bytes` unless the descriptor fails or stays full for the timeout.
Result<void> write_all(int fd, std::span<const uint8_t> bytes, bool socket) {
  while (!bytes.empty()) {
    ssize_t n = socket ? ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT)
                       : ::write(fd, bytes.data(), bytes.size());
    if (n >= 0) {
      bytes = bytes.subspan(static_cast<size_t>(n));
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN) return Error::from_errno("console write");
    pollfd pfd{fd, POLLOUT, 0};
    int ready = ::poll(&pfd, 1, kClientWriteTimeoutMs);
    if (ready == 0) return Error(Errc::kUnavailable, "console reader is not reading");
    if (ready < 0 && errno != EINTR) return Error::from_errno("console poll");
  }
  return {};
}

}  // namespace

Result<std::unique_ptr<FdSerialOutput>> FdSerialOutput::for_stdout() {
  // A duplicate, so closing the sink never closes the process's stdout.
  int fd = ::fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return Error::from_errno("duplicating stdout");
  return std::make_unique<FdSerialOutput>(UniqueFd(fd));
}

Result<std::unique_ptr<FdSerialOutput>> FdSerialOutput::open_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return Error::from_errno("opening console file " + path);
  return std::make_unique<FdSerialOutput>(UniqueFd(fd));
}

void FdSerialOutput::write(std::span<const uint8_t> bytes) {
  std::lock_guard lock(mu_);
  if (failed_) return;
  auto r = write_all(fd_.get(), bytes, false);
  if (!r.ok()) {
    spdlog::warn("serial console output stopped: {}", r.error().message());
    failed_ = true;
  }
}

Result<std::unique_ptr<SerialSocketServer>> SerialSocketServer::listen(const std::string& path,
                                                                       InputHandler on_input) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return Error(Errc::kInvalidArgument, "console socket path too long or empty: " + path);
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return Error::from_errno("console socket");
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) < 0) {
    return Error::from_errno("binding console socket " + path);
  }
  if (::listen(fd.get(), 1) < 0) {
    ::unlink(path.c_str());
    return Error::from_errno("listening on console socket " + path);
  }
  auto stop = EventFd::create(EFD_NONBLOCK);
  if (!stop.ok()) {
    ::unlink(path.c_str());
    return std::move(stop).error();
  }
  return std::unique_ptr<SerialSocketServer>(
      new SerialSocketServer(path, std::move(fd), std::move(stop).value(), std::move(on_input)));
}

SerialSocketServer::~SerialSocketServer() {
  stop();
  ::unlink(path_.c_str());
}

Result<bool> SerialSocketServer::poll_once(int timeout_ms) {
  int client_fd;
  {
    std::lock_guard lock(mu_);
    client_fd = client_.get();
  }
  pollfd fds[3] = {{stop_.fd(), POLLIN, 0}, {listener_.get(), POLLIN, 0}, {client_fd, POLLIN, 0}};
  int ready = ::poll(fds, client_fd >= 0 ? 3 : 2, timeout_ms);
  if (ready < 0) {
    if (errno == EINTR) return true;
    return Error::from_errno("console socket poll");
  }
  if (fds[0].revents) return false;
  // Only this thread replaces or drops the client, so client_fd is still the current client.
  if (client_fd >= 0 && fds[2].revents) read_client();
  if (fds[1].revents & POLLIN) IOASIS_TRY(accept_client());
  return true;
}

void SerialSocketServer::start() {
  thread_ = std::thread([this] {
    for (;;) {
      auto more = poll_once(-1);
      if (!more.ok()) {
        spdlog::error("serial console socket: {}", more.error().message());
        return;
      }
      if (!*more) return;
    }
  });
}

void SerialSocketServer::stop() {
  if (auto r = stop_.signal(); !r.ok())
    spdlog::warn("console socket stop: {}", r.error().message());
  if (thread_.joinable()) thread_.join();
}

bool SerialSocketServer::has_client() const {
  std::lock_guard lock(mu_);
  return client_.valid();
}

void SerialSocketServer::write(std::span<const uint8_t> bytes) {
  std::lock_guard lock(mu_);
  if (!client_) return;
  // A failed write leaves the client in place: the poll loop sees the hangup and drops it.
  auto r = write_all(client_.get(), bytes, true);
  if (!r.ok()) spdlog::debug("serial console client: {}", r.error().message());
}

Result<void> SerialSocketServer::accept_client() {
  int fd = ::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (fd < 0) {
    if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) return {};
    return Error::from_errno("accepting console client");
  }
  std::lock_guard lock(mu_);
  if (client_) spdlog::info("serial console: new client replaces the previous one");
  client_.reset(fd);
  return {};
}

void SerialSocketServer::read_client() {
  uint8_t buf[256];
  ssize_t n;
  {
    std::lock_guard lock(mu_);
    n = ::recv(client_.get(), buf, sizeof(buf), MSG_DONTWAIT);
  }
  if (n > 0) {
    if (on_input_) on_input_(std::span<const uint8_t>(buf, static_cast<size_t>(n)));
    return;
  }
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  drop_client();
}

void SerialSocketServer::drop_client() {
  std::lock_guard lock(mu_);
  client_.reset();
}

}  // namespace ioasis::devices
