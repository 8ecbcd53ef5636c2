// A vfio-user server for one PCI function, the DmaEngine: it listens on a UNIX socket, serves
// one client at a time, and turns the protocol into device accesses. handle() is the whole
// request side and needs no socket, which is what the fuzz target drives.
//
// When a client goes away the server drops its DMA regions and interrupt eventfds and waits for
// the next one, keeping the device state (vfio-user.rst, "Client Disconnection").
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "devices/vfio/server/dma_engine.h"
#include "devices/vfio/vfio_user_messages.h"
#include "devices/vfio/vfio_user_socket.h"

namespace ioasis::devices::vfio_user {

struct ServerOptions {
  std::string socket_path;
  DmaEngineOptions device;
  // How long a DMA_READ/DMA_WRITE to the client may take before the session is failed.
  std::chrono::milliseconds dma_timeout{5000};
};

class VfioUserServer {
 public:
  static Result<std::unique_ptr<VfioUserServer>> create(ServerOptions options);
  ~VfioUserServer();

  // Serves clients on a thread of its own until the server is destroyed.
  void start();
  // Serves clients on the calling thread, forever or until `max_sessions` clients have come and
  // gone.
  void serve(int max_sessions = -1);

  // One request from the client, already framed. Fds that arrived with it are taken.
  Reply handle(Message& request);

  DmaEngine& device() { return *device_; }
  const std::string& socket_path() const { return options_.socket_path; }

 private:
  explicit VfioUserServer(ServerOptions options) : options_(std::move(options)) {}
  Reply on_version(std::span<const uint8_t> payload);
  Reply on_dma_map(Message& request);
  Reply on_dma_unmap(std::span<const uint8_t> payload);
  Reply on_region_info(std::span<const uint8_t> payload);
  uint32_t message_irq_index() const;
  Reply on_irq_info(std::span<const uint8_t> payload);
  Reply on_set_irqs(Message& request);
  // SET_IRQS with ACTION_TRIGGER: connect, disconnect or fire an index.
  Reply trigger_irqs(const IrqSet& set, Message& request, size_t extra);
  Reply on_region_access(std::span<const uint8_t> payload, bool write);
  void end_session();
  static Result<void> remote_dma(const std::weak_ptr<Connection>& session, Iova iova,
                                 std::span<uint8_t> data, bool write,
                                 std::chrono::milliseconds timeout);

  ServerOptions options_;
  std::unique_ptr<DmaEngine> device_;
  UniqueFd listener_;
  bool negotiated_ = false;
  std::mutex session_mu_;
  std::shared_ptr<Connection> session_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace ioasis::devices::vfio_user
