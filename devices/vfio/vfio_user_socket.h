// vfio-user framing over a UNIX stream socket, shared by the client and the server: one message
// is a Header, its payload and the file descriptors that came with it as SCM_RIGHTS.
//
// A Connection owns the socket and a receiver thread. Commands from the peer go to a handler on
// that thread and are answered from there; a call() sends one command and waits, up to a
// deadline, for the reply with its message id. Anything the peer does wrong (a malformed or
// oversized message, a reply nobody asked for, silence past the deadline, hanging up) fails the
// connection for good: failed() turns true, every waiting and later call() returns the reason,
// and the socket is shut down. Nothing the peer sends can crash this process.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "base/fd.h"
#include "base/result.h"
#include "devices/vfio/vfio_user_protocol.h"

namespace ioasis::devices::vfio_user {

struct Message {
  Header header{};
  std::vector<uint8_t> payload;
  std::vector<UniqueFd> fds;

  uint32_t type() const { return header.flags & kFlagsTypeMask; }
  bool is_reply() const { return type() == kTypeReply; }
};

// Checks a received header before its payload is read: size within limits, a known type.
Result<void> check_header(const Header& header, uint32_t max_message_size);

// Copies a T from the front of `payload`, or fails naming `what` when it is too short.
template <typename T>
Result<T> read_struct(std::span<const uint8_t> payload, const char* what) {
  if (payload.size() < sizeof(T)) {
    return Error(Errc::kInvalidArgument, std::string(what) + ": payload of " +
                                             std::to_string(payload.size()) + " bytes, need " +
                                             std::to_string(sizeof(T)));
  }
  T value;
  std::memcpy(&value, payload.data(), sizeof(T));
  return value;
}

// The bytes of a wire struct, for building payloads.
template <typename T>
std::span<const uint8_t> bytes_of(const T& value) {
  return {reinterpret_cast<const uint8_t*>(&value), sizeof(T)};
}

Result<UniqueFd> listen_unix(const std::string& path);
Result<UniqueFd> connect_unix(const std::string& path);
// Waits up to `timeout` for a connection; kUnavailable on timeout.
Result<UniqueFd> accept_unix(int listen_fd, std::chrono::milliseconds timeout);

Result<void> send_message(int fd, const Header& header, std::span<const uint8_t> payload,
                          std::span<const int> fds = {});
// Blocks until a header arrives, then gives the rest of the message `rest_timeout`.
Result<Message> receive_message(int fd, uint32_t max_message_size,
                                std::chrono::milliseconds rest_timeout);

// What a command handler answers: a payload, or an errno for an error reply.
// `fds` are borrowed: they must stay open until the handler's reply has been sent.
struct Reply {
  uint32_t error = 0;
  std::vector<uint8_t> payload;
  std::vector<int> fds;
  static Reply failure(int err) { return Reply{static_cast<uint32_t>(err), {}, {}}; }
};

class Connection {
 public:
  using Handler = std::function<Reply(Message& command)>;

  // `name` prefixes every error and log line ("vfio-user /run/dma.sock"). A server passes
  // `hangup_is_normal`: a client leaving between requests ends a session, it is no fault.
  Connection(UniqueFd socket, std::string name, Handler handler, bool hangup_is_normal = false);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Sends `command` and waits for its reply. An error reply comes back as an Error with the
  // peer's errno and leaves the connection usable; anything else that goes wrong fails it.
  Result<Message> call(Command command, std::span<const uint8_t> payload, std::span<const int> fds,
                       std::chrono::milliseconds timeout);

  // Fails the connection on behalf of a caller that found a reply malformed. `quiet` logs at
  // info level, for an orderly shutdown.
  void fail(Error reason);
  void fail(Error reason, bool quiet);
  bool failed() const;
  std::optional<Error> failure() const;
  // Blocks until the connection fails or the peer hangs up.
  void wait_closed();
  const std::string& name() const { return name_; }

 private:
  void receive_loop();
  void dispatch_command(Message& message);
  Result<void> send(const Header& header, std::span<const uint8_t> payload,
                    std::span<const int> fds);

  UniqueFd socket_;
  std::string name_;
  Handler handler_;
  bool hangup_is_normal_;

  std::mutex send_mu_;
  std::mutex call_mu_;  // one call in flight: replies are matched to it

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::optional<Error> failure_;
  std::optional<Header> pending_;  // the command awaiting a reply
  std::optional<Message> reply_;
  uint16_t next_msg_id_ = 1;

  std::atomic<bool> closing_{false};
  std::thread receiver_;
};

}  // namespace ioasis::devices::vfio_user
