#include "devices/vfio/vfio_user_client.h"

#include <fmt/format.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstring>

#include "base/log.h"

namespace ioasis::devices::vfio_user {

namespace {

constexpr int kMaxCapabilityHops = 48;  // a 256-byte config space holds fewer capabilities

}  // namespace

Result<std::unique_ptr<VfioUserClient>> VfioUserClient::connect(const std::string& socket_path,
                                                                ClientOptions options) {
  IOASIS_ASSIGN_OR_RETURN(UniqueFd fd, connect_unix(socket_path));
  std::unique_ptr<VfioUserClient> c(new VfioUserClient(socket_path, options));
  VfioUserClient* self = c.get();
  c->connection_ = std::make_unique<Connection>(std::move(fd), "vfio-user " + socket_path,
                                                [self](Message& m) { return self->serve_dma(m); });
  auto negotiated = c->negotiate();
  if (!negotiated.ok()) return std::move(negotiated).error().context("connecting " + socket_path);
  spdlog::info("vfio-user {}: {} regions, {} irq indexes, max transfer {} bytes", socket_path,
               uint32_t{c->device_info_.num_regions}, uint32_t{c->device_info_.num_irqs},
               c->server_caps_.max_data_xfer_size);
  return c;
}

VfioUserClient::~VfioUserClient() = default;

Result<Message> VfioUserClient::call(Command command, std::span<const uint8_t> payload,
                                     std::span<const int> fds) {
  return connection_->call(command, payload, fds, options_.timeout);
}

Error VfioUserClient::reject(Error error) {
  connection_->fail(error);
  return error;
}

Result<void> VfioUserClient::negotiate() {
  VersionMessage ours;
  ours.capabilities.max_msg_fds = kMaxMsgFds;
  ours.capabilities.max_data_xfer_size = kMaxDataXferSize;
  IOASIS_ASSIGN_OR_RETURN(Message reply, call(Command::kVersion, encode_version(ours)));
  auto theirs = parse_version(reply.payload);
  if (!theirs.ok()) return reject(std::move(theirs).error());
  if (theirs->major != kVersionMajor || theirs->minor > kVersionMinor) {
    return reject(Error(Errc::kUnsupported,
                        fmt::format("server speaks version {}.{}", theirs->major, theirs->minor)));
  }
  server_caps_ = theirs->capabilities;
  if (server_caps_.max_data_xfer_size == 0) {
    return reject(Error(Errc::kInvalidArgument, "server max_data_xfer_size is 0"));
  }
  server_caps_.max_data_xfer_size =
      std::min<uint64_t>(server_caps_.max_data_xfer_size, kMaxDataXferSize);

  DeviceInfo request{sizeof(DeviceInfo), 0, 0, 0};
  IOASIS_ASSIGN_OR_RETURN(reply, call(Command::kDeviceGetInfo, bytes_of(request)));
  auto info = parse_device_info(reply.payload);
  if (!info.ok()) return reject(std::move(info).error());
  if (!(info->flags & VFIO_DEVICE_FLAGS_PCI)) {
    return reject(Error(Errc::kUnsupported, "the device is not a PCI device"));
  }
  device_info_ = *info;
  return {};
}

Result<Region> VfioUserClient::region(uint32_t index) {
  if (index >= device_info_.num_regions) {
    return Error(Errc::kInvalidArgument, fmt::format("the device has no region {}", index));
  }
  // Room for a sparse mmap capability with a handful of areas.
  vfio_region_info request{};
  request.argsz = sizeof(request) + 256;
  request.index = index;
  IOASIS_ASSIGN_OR_RETURN(Message reply, call(Command::kDeviceGetRegionInfo, bytes_of(request)));
  auto info = parse_region_info(reply.payload, index, reply.fds.size());
  if (!info.ok()) return reject(std::move(info).error());
  Region r{std::move(*info), {}};
  if (!reply.fds.empty()) r.fd = std::move(reply.fds[0]);
  return r;
}

Result<VfioRegionInfo> VfioUserClient::region_info(uint32_t index) {
  IOASIS_ASSIGN_OR_RETURN(Region r, region(index));
  return std::move(r.info);  // the fd closes: a caller that mmaps asks region() instead
}

Result<MappedRegion> VfioUserClient::map_region(uint32_t index, uint64_t offset, uint64_t size) {
  IOASIS_ASSIGN_OR_RETURN(Region r, region(index));
  bool inside = std::any_of(r.info.mmap_areas.begin(), r.info.mmap_areas.end(), [&](auto& a) {
    return offset >= a.offset && size <= a.size && offset - a.offset <= a.size - size;
  });
  if (!r.info.mmappable() || !r.fd.valid() || !inside) {
    return Error(Errc::kInvalidArgument,
                 fmt::format("region {} cannot be mmapped at {:#x}+{:#x}", index, offset, size));
  }
  int prot = (r.info.readable() ? PROT_READ : 0) | (r.info.writable() ? PROT_WRITE : 0);
  return MappedRegion::map(size, prot, MAP_SHARED, r.fd.get(),
                           static_cast<off_t>(r.info.mmap_offset + offset));
}

Result<vfio_irq_info> VfioUserClient::irq_info(uint32_t index) {
  vfio_irq_info request{sizeof(vfio_irq_info), 0, index, 0};
  IOASIS_ASSIGN_OR_RETURN(Message reply, call(Command::kDeviceGetIrqInfo, bytes_of(request)));
  if (!reply.fds.empty()) return reject(Error(Errc::kInvalidArgument, "GET_IRQ_INFO sent fds"));
  auto info = parse_irq_info(reply.payload, index);
  if (!info.ok()) return reject(std::move(info).error());
  return *info;
}

Result<void> VfioUserClient::set_irqs(uint32_t index, uint32_t start,
                                      std::span<const int> eventfds) {
  if (eventfds.size() > server_caps_.max_msg_fds || eventfds.size() > kMaxMsgFds) {
    return Error(Errc::kInvalidArgument, "more eventfds than one message may carry");
  }
  IrqSet set{};
  set.argsz = sizeof(set);
  set.index = index;
  set.start = eventfds.empty() ? 0 : start;
  set.count = static_cast<uint32_t>(eventfds.size());
  set.flags = VFIO_IRQ_SET_ACTION_TRIGGER |
              (eventfds.empty() ? VFIO_IRQ_SET_DATA_NONE : VFIO_IRQ_SET_DATA_EVENTFD);
  IOASIS_ASSIGN_OR_RETURN(Message reply, call(Command::kDeviceSetIrqs, bytes_of(set), eventfds));
  if (!reply.payload.empty() || !reply.fds.empty()) {
    return reject(Error(Errc::kInvalidArgument, "SET_IRQS reply has a payload"));
  }
  return {};
}

Result<void> VfioUserClient::unmask_irq(uint32_t index) {
  IrqSet set{};
  set.argsz = sizeof(set);
  set.index = index;
  set.count = 1;
  set.flags = VFIO_IRQ_SET_ACTION_UNMASK | VFIO_IRQ_SET_DATA_NONE;
  IOASIS_ASSIGN_OR_RETURN(Message reply, call(Command::kDeviceSetIrqs, bytes_of(set)));
  if (!reply.payload.empty() || !reply.fds.empty()) {
    return reject(Error(Errc::kInvalidArgument, "SET_IRQS reply has a payload"));
  }
  return {};
}

Result<void> VfioUserClient::region_read(uint32_t index, uint64_t offset, std::span<uint8_t> data) {
  uint64_t step = server_caps_.max_data_xfer_size;
  for (uint64_t done = 0; done < data.size();) {
    uint32_t count = static_cast<uint32_t>(std::min<uint64_t>(step, data.size() - done));
    RegionAccess request{offset + done, index, count};
    IOASIS_ASSIGN_OR_RETURN(Message reply, call(Command::kRegionRead, bytes_of(request)));
    auto bytes = parse_region_read_reply(reply.payload, request);
    if (!bytes.ok()) return reject(std::move(bytes).error());
    std::memcpy(data.data() + done, bytes->data(), count);
    done += count;
  }
  return {};
}

Result<void> VfioUserClient::region_write(uint32_t index, uint64_t offset,
                                          std::span<const uint8_t> data) {
  uint64_t step = server_caps_.max_data_xfer_size;
  for (uint64_t done = 0; done < data.size();) {
    uint32_t count = static_cast<uint32_t>(std::min<uint64_t>(step, data.size() - done));
    RegionAccess request{offset + done, index, count};
    std::vector<uint8_t> payload;
    append(payload, request);
    payload.insert(payload.end(), data.begin() + done, data.begin() + done + count);
    IOASIS_ASSIGN_OR_RETURN(Message reply, call(Command::kRegionWrite, payload));
    auto checked = parse_region_write_reply(reply.payload, request);
    if (!checked.ok()) return reject(std::move(checked).error());
    done += count;
  }
  return {};
}

Result<void> VfioUserClient::dma_map(Iova iova, const iommu::HostRange& host, iommu::Perm perm) {
  if (host.length == 0 || !range_fits(iova.value, host.length)) {
    return Error(Errc::kInvalidArgument, "DMA map range is empty or wraps");
  }
  DmaMap map{sizeof(DmaMap), 0, host.fd >= 0 ? host.fd_offset : 0, iova.value, host.length};
  if (iommu::has_perm(perm, iommu::Perm::kRead)) map.flags |= kDmaMapRead;
  if (iommu::has_perm(perm, iommu::Perm::kWrite)) map.flags |= kDmaMapWrite;
  bool by_socket = host.fd < 0;
  if (by_socket) {
    // Registered before the request: the server may use the range as soon as it has it.
    std::lock_guard lock(maps_mu_);
    socket_maps_[iova] = SocketMap{host.length, host.hva, perm};
  }
  std::span<const int> fds;
  if (!by_socket) fds = {&host.fd, 1};
  auto reply = call(Command::kDmaMap, bytes_of(map), fds);
  if (!reply.ok() && by_socket) {
    std::lock_guard lock(maps_mu_);
    socket_maps_.erase(iova);
  }
  if (!reply.ok()) return std::move(reply).error();
  if (!reply->payload.empty())
    return reject(Error(Errc::kInvalidArgument, "DMA_MAP reply has a payload"));
  return {};
}

Result<void> VfioUserClient::dma_unmap(Iova iova, uint64_t size) {
  DmaUnmap request{sizeof(DmaUnmap), 0, iova.value, size};
  IOASIS_ASSIGN_OR_RETURN(Message reply, call(Command::kDmaUnmap, bytes_of(request)));
  auto echo = read_struct<DmaUnmap>(reply.payload, "DMA_UNMAP reply");
  if (!echo.ok()) return reject(std::move(echo).error());
  if (echo->address != iova.value || echo->size != size) {
    return reject(Error(Errc::kInvalidArgument, "DMA_UNMAP reply names another range"));
  }
  // Dropped only now: until the reply the server may still reach the range (the spec lets it
  // finish DMA in flight before it answers).
  std::lock_guard lock(maps_mu_);
  auto it = socket_maps_.find(iova);
  if (it != socket_maps_.end() && it->second.size == size) socket_maps_.erase(it);
  return {};
}

Result<void> VfioUserClient::reset() {
  IOASIS_ASSIGN_OR_RETURN(Message reply, call(Command::kDeviceReset, {}));
  if (!reply.payload.empty()) {
    return reject(Error(Errc::kInvalidArgument, "DEVICE_RESET reply has a payload"));
  }
  return {};
}

Result<std::optional<uint64_t>> VfioUserClient::isolation_group() {
  uint8_t config[256];
  IOASIS_TRY(region_read(VFIO_PCI_CONFIG_REGION_INDEX, 0, config));
  constexpr uint16_t kStatusCapList = 0x10;
  uint16_t status = static_cast<uint16_t>(config[6] | config[7] << 8);
  if (!(status & kStatusCapList)) return std::optional<uint64_t>();
  uint8_t at = config[0x34] & 0xfc;
  for (int hops = 0; at != 0 && hops < kMaxCapabilityHops; ++hops) {
    if (at < 0x40 || at > sizeof(config) - sizeof(IsolationGroupCapability)) break;
    IsolationGroupCapability cap;
    std::memcpy(&cap, config + at, sizeof(cap));
    if (cap.cap_id == kCapIdVendor && cap.length >= sizeof(cap) &&
        cap.kind == kVendorCapIsolationGroup) {
      uint64_t group = cap.group;
      return std::optional<uint64_t>(group);
    }
    at = cap.next & 0xfc;
  }
  return std::optional<uint64_t>();
}

std::optional<Hva> VfioUserClient::socket_translate(Iova iova, uint64_t size, iommu::Perm perm) {
  if (!range_fits(iova.value, size)) return std::nullopt;
  std::lock_guard lock(maps_mu_);
  auto it = socket_maps_.upper_bound(iova);
  if (it == socket_maps_.begin()) return std::nullopt;
  --it;
  uint64_t offset = iova.value - it->first.value;
  if (offset >= it->second.size || size > it->second.size - offset) return std::nullopt;
  if (!iommu::has_perm(it->second.perm, perm)) return std::nullopt;
  return it->second.hva + offset;
}

Reply VfioUserClient::serve_dma(Message& request) {
  auto command = static_cast<Command>(request.header.command);
  if (command != Command::kDmaRead && command != Command::kDmaWrite) {
    return Reply::failure(ENOTSUP);
  }
  bool write = command == Command::kDmaWrite;
  auto access = read_struct<DmaAccess>(request.payload, command_name(request.header.command));
  if (!access.ok() || access->count == 0 || access->count > kMaxDataXferSize) {
    return Reply::failure(EINVAL);
  }
  if (write && request.payload.size() != sizeof(DmaAccess) + access->count) {
    return Reply::failure(EINVAL);
  }
  auto hva = socket_translate(Iova(access->address), access->count,
                              write ? iommu::Perm::kWrite : iommu::Perm::kRead);
  if (!hva) {
    spdlog::warn("vfio-user {}: server {} of {:#x}+{:#x} outside its DMA maps refused", path_,
                 write ? "write" : "read", uint64_t{access->address}, uint64_t{access->count});
    return Reply::failure(EFAULT);
  }
  Reply r;
  append(r.payload, *access);
  if (write) {
    std::memcpy(hva->ptr(), request.payload.data() + sizeof(DmaAccess), access->count);
  } else {
    r.payload.insert(r.payload.end(), hva->ptr(), hva->ptr() + access->count);
  }
  return r;
}

}  // namespace ioasis::devices::vfio_user
