// The client side of vfio-user: what the VMM uses to drive a device another process emulates.
// Connecting negotiates the version and reads the device info; after that each method is one
// request and its reply, checked field by field against what was asked.
//
// A server that misbehaves (a malformed or mismatched reply, silence past the deadline, a hang
// up) fails the client for good: failed() turns true, failure() says why, every later request
// returns that error at once. The process and the other devices carry on.
//
// DMA: dma_map() hands the server the memory's fd and offset, so it maps guest memory itself and
// no byte is copied on the way (zero copy). Memory without an fd is announced without one; the
// server then reaches it with DMA_READ/DMA_WRITE, which this client answers from its receiver
// thread, within the announced ranges and permissions only.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>

#include "base/address.h"
#include "base/fd.h"
#include "base/result.h"
#include "devices/vfio/vfio_device_transport.h"
#include "devices/vfio/vfio_user_messages.h"
#include "devices/vfio/vfio_user_socket.h"
#include "iommu/types.h"

namespace ioasis::devices::vfio_user {

struct ClientOptions {
  // How long one request may wait for its reply.
  std::chrono::milliseconds timeout{5000};
};

// A region as GET_REGION_INFO describes it, with its fd when it can be mmapped.
struct Region {
  RegionInfo info;
  UniqueFd fd;
};

class VfioUserClient final : public VfioDeviceTransport {
 public:
  static Result<std::unique_ptr<VfioUserClient>> connect(const std::string& socket_path,
                                                         ClientOptions options = {});
  ~VfioUserClient();

  const std::string& socket_path() const { return path_; }
  const Capabilities& server_capabilities() const { return server_caps_; }
  const DeviceInfo& device_info() const { return device_info_; }

  Result<Region> region(uint32_t index);
  Result<VfioRegionInfo> region_info(uint32_t index) override;
  Result<vfio_irq_info> irq_info(uint32_t index) override;
  // Connects `eventfds` to vectors start.. of IRQ `index` (VFIO_IRQ_SET_ACTION_TRIGGER); an
  // empty span disconnects every vector of the index.
  Result<void> set_irqs(uint32_t index, uint32_t start, std::span<const int> eventfds) override;
  Result<void> unmask_irq(uint32_t index) override;
  // Split into transfers no larger than the server's max_data_xfer_size.
  Result<void> region_read(uint32_t index, uint64_t offset, std::span<uint8_t> data) override;
  Result<void> region_write(uint32_t index, uint64_t offset,
                            std::span<const uint8_t> data) override;

  Result<void> dma_map(Iova iova, const iommu::HostRange& host, iommu::Perm perm);
  // [iova, iova+size) must match one dma_map() exactly.
  Result<void> dma_unmap(Iova iova, uint64_t size);
  Result<MappedRegion> map_region(uint32_t index, uint64_t offset, uint64_t size) override;
  Result<void> reset() override;

  // The isolation group the server declares in its config space, if any.
  Result<std::optional<uint64_t>> isolation_group();

  bool failed() const { return connection_->failed(); }
  std::optional<Error> failure() const override { return connection_->failure(); }

 private:
  struct SocketMap {
    uint64_t size = 0;
    Hva hva;
    iommu::Perm perm = iommu::Perm::kNone;
  };

  VfioUserClient(std::string path, ClientOptions options)
      : path_(std::move(path)), options_(options) {}
  Result<Message> call(Command command, std::span<const uint8_t> payload,
                       std::span<const int> fds = {});
  // Fails the connection: the reply broke the protocol.
  Error reject(Error error);
  Result<void> negotiate();
  Reply serve_dma(Message& request);
  // The host address of [iova, iova+size) inside one socket-reached map allowing `perm`.
  std::optional<Hva> socket_translate(Iova iova, uint64_t size, iommu::Perm perm);

  std::string path_;
  ClientOptions options_;
  Capabilities server_caps_;
  DeviceInfo device_info_{};
  std::mutex maps_mu_;
  std::map<Iova, SocketMap> socket_maps_;
  std::unique_ptr<Connection> connection_;
};

}  // namespace ioasis::devices::vfio_user
