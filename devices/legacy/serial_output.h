// Where the guest's console bytes go. The UART writes each byte from a vCPU thread; a sink must
// not block for long, and it drops output rather than stall the guest when its reader is gone.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>

#include "base/fd.h"
#include "base/result.h"

namespace ioasis::devices {

class SerialOutput {
 public:
  virtual ~SerialOutput() = default;
  virtual void write(std::span<const uint8_t> bytes) = 0;
};

// Writes to a file descriptor it owns: stdout (a duplicate of it), a log file, a pipe.
class FdSerialOutput : public SerialOutput {
 public:
  explicit FdSerialOutput(UniqueFd fd) : fd_(std::move(fd)) {}

  static Result<std::unique_ptr<FdSerialOutput>> for_stdout();
  // Opens (creating if needed) a file and appends to it.
  static Result<std::unique_ptr<FdSerialOutput>> open_file(const std::string& path);

  void write(std::span<const uint8_t> bytes) override;

 private:
  std::mutex mu_;
  UniqueFd fd_;
  bool failed_ = false;  // logged once, then output is dropped
};

// A listening UNIX socket with at most one client: the console is written to the client, and
// what the client sends is handed to `on_input` (the VM passes it to Serial::enqueue_input).
// A new connection replaces the previous client. Output written while no client is connected
// is dropped.
class SerialSocketServer : public SerialOutput {
 public:
  using InputHandler = std::function<void(std::span<const uint8_t>)>;

  // Binds `path` (which must not exist) and starts listening.
  static Result<std::unique_ptr<SerialSocketServer>> listen(const std::string& path,
                                                            InputHandler on_input);
  ~SerialSocketServer() override;

  // Waits up to `timeout_ms` (-1: forever) for a connection, client input or stop(), and handles
  // what arrived. Returns false once stop() was called.
  Result<bool> poll_once(int timeout_ms);
  // Runs poll_once on a thread of its own until stop().
  void start();
  void stop();

  bool has_client() const;
  void write(std::span<const uint8_t> bytes) override;

 private:
  SerialSocketServer(std::string path, UniqueFd listener, EventFd stop, InputHandler on_input)
      : path_(std::move(path)),
        listener_(std::move(listener)),
        stop_(std::move(stop)),
        on_input_(std::move(on_input)) {}
  Result<void> accept_client();
  void read_client();
  void drop_client();

  std::string path_;
  UniqueFd listener_;
  EventFd stop_;
  InputHandler on_input_;
  std::thread thread_;

  mutable std::mutex mu_;
  UniqueFd client_;
};

}  // namespace ioasis::devices
