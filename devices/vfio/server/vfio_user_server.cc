#include "devices/vfio/server/vfio_user_server.h"

#include <fmt/format.h>

#include <cstring>

#include "base/log.h"

namespace ioasis::devices::vfio_user {

using namespace dma_engine;

namespace {

constexpr uint32_t kServerMaxDmaMaps = 1024;

std::vector<uint8_t> echo_of(std::span<const uint8_t> payload, size_t size) {
  return {payload.begin(), payload.begin() + static_cast<ptrdiff_t>(size)};
}

int errno_for(const Error& e) {
  switch (e.code()) {
    case Errc::kAlreadyExists:
      return EEXIST;
    case Errc::kNotFound:
      return ENOENT;
    case Errc::kResourceExhausted:
      return ENOSPC;
    default:
      return e.sys_errno() ? e.sys_errno() : EINVAL;
  }
}

// The size of each region the device has; zero for the indexes it leaves empty.
uint64_t region_size(uint32_t index) {
  switch (index) {
    case VFIO_PCI_BAR0_REGION_INDEX:
      return kBar0Size;
    case VFIO_PCI_BAR2_REGION_INDEX:
      return kBar2Size;
    case VFIO_PCI_CONFIG_REGION_INDEX:
      return 256;
    default:
      return 0;
  }
}

}  // namespace

Result<std::unique_ptr<VfioUserServer>> VfioUserServer::create(ServerOptions options) {
  std::unique_ptr<VfioUserServer> s(new VfioUserServer(std::move(options)));
  IOASIS_ASSIGN_OR_RETURN(s->device_, DmaEngine::create(s->options_.device));
  IOASIS_ASSIGN_OR_RETURN(s->listener_, listen_unix(s->options_.socket_path));
  return s;
}

VfioUserServer::~VfioUserServer() {
  stopping_ = true;
  {
    std::lock_guard lock(session_mu_);
    if (session_) session_->fail(Error(Errc::kUnavailable, "server shutting down"), true);
  }
  if (thread_.joinable()) thread_.join();
  ::unlink(options_.socket_path.c_str());
}

void VfioUserServer::start() {
  thread_ = std::thread([this] { serve(); });
}

void VfioUserServer::serve(int max_sessions) {
  for (int served = 0; !stopping_ && served != max_sessions;) {
    auto fd = accept_unix(listener_.get(), std::chrono::milliseconds(100));
    if (!fd.ok()) {
      // A timeout only means "look at stopping_ again"; anything else must not spin.
      if (fd.error().code() != Errc::kUnavailable) {
        spdlog::warn("vfio-user server {}: {}", options_.socket_path, fd.error().message());
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      continue;
    }
    negotiated_ = false;
    auto session = std::make_shared<Connection>(
        std::move(*fd), "vfio-user server " + options_.socket_path,
        [this](Message& m) { return handle(m); }, /*hangup_is_normal=*/true);
    std::weak_ptr<Connection> weak = session;
    auto timeout = options_.dma_timeout;
    device_->dma().set_remote([weak, timeout](Iova iova, std::span<uint8_t> data, bool write) {
      return remote_dma(weak, iova, data, write, timeout);
    });
    {
      std::lock_guard lock(session_mu_);
      session_ = session;
      if (stopping_) session->fail(Error(Errc::kUnavailable, "server shutting down"), true);
    }
    session->wait_closed();
    end_session();
    ++served;
  }
}

Result<void> VfioUserServer::remote_dma(const std::weak_ptr<Connection>& weak, Iova iova,
                                        std::span<uint8_t> data, bool write,
                                        std::chrono::milliseconds timeout) {
  auto session = weak.lock();
  if (!session) return Error(Errc::kUnavailable, "no client");
  DmaAccess access{iova.value, data.size()};
  std::vector<uint8_t> payload;
  append(payload, access);
  if (write) payload.insert(payload.end(), data.begin(), data.end());
  IOASIS_ASSIGN_OR_RETURN(
      Message reply,
      session->call(write ? Command::kDmaWrite : Command::kDmaRead, payload, {}, timeout));
  if (write) return parse_dma_write_reply(reply.payload, access);
  IOASIS_ASSIGN_OR_RETURN(auto bytes, parse_dma_read_reply(reply.payload, access));
  std::memcpy(data.data(), bytes.data(), bytes.size());
  return {};
}

void VfioUserServer::end_session() {
  device_->dma().set_remote(nullptr);
  device_->dma().clear();
  device_->set_msi_eventfd(UniqueFd());
  device_->set_err_eventfd(UniqueFd());
  device_->set_intx_eventfd(UniqueFd());
  std::lock_guard lock(session_mu_);
  session_.reset();
}

Reply VfioUserServer::handle(Message& request) {
  auto command = static_cast<Command>(request.header.command);
  std::span<const uint8_t> payload = request.payload;
  if (!negotiated_ && command != Command::kVersion) return Reply::failure(EINVAL);
  switch (command) {
    case Command::kVersion:
      return on_version(payload);
    case Command::kDmaMap:
      return on_dma_map(request);
    case Command::kDmaUnmap:
      return on_dma_unmap(payload);
    case Command::kDeviceGetInfo: {
      auto in = read_struct<DeviceInfo>(payload, "DEVICE_GET_INFO");
      if (!in.ok() || in->argsz < sizeof(DeviceInfo)) return Reply::failure(EINVAL);
      DeviceInfo info{sizeof(DeviceInfo), VFIO_DEVICE_FLAGS_RESET | VFIO_DEVICE_FLAGS_PCI,
                      VFIO_PCI_NUM_REGIONS, VFIO_PCI_NUM_IRQS};
      Reply r;
      append(r.payload, info);
      return r;
    }
    case Command::kDeviceGetRegionInfo:
      return on_region_info(payload);
    case Command::kDeviceGetIrqInfo:
      return on_irq_info(payload);
    case Command::kDeviceSetIrqs:
      return on_set_irqs(request);
    case Command::kRegionRead:
      return on_region_access(payload, false);
    case Command::kRegionWrite:
      return on_region_access(payload, true);
    case Command::kDeviceReset:
      device_->reset();
      return Reply{};
    default:
      return Reply::failure(ENOTSUP);
  }
}

Reply VfioUserServer::on_version(std::span<const uint8_t> payload) {
  auto version = parse_version(payload);
  if (!version.ok() || version->major != kVersionMajor) return Reply::failure(ENOTSUP);
  VersionMessage ours;
  ours.minor = std::min(version->minor, kVersionMinor);
  ours.capabilities.max_msg_fds = kMaxMsgFds;
  ours.capabilities.max_data_xfer_size = kMaxDataXferSize;
  ours.capabilities.pgsizes = 4096;
  ours.capabilities.max_dma_maps = kServerMaxDmaMaps;
  negotiated_ = true;
  return Reply{0, encode_version(ours), {}};
}

Reply VfioUserServer::on_dma_map(Message& request) {
  auto map = read_struct<DmaMap>(request.payload, "DMA_MAP");
  if (!map.ok() || map->argsz < sizeof(DmaMap) || (map->flags & ~(kDmaMapRead | kDmaMapWrite)) ||
      request.fds.size() > 1) {
    return Reply::failure(EINVAL);
  }
  if (device_->dma().count() >= kServerMaxDmaMaps) return Reply::failure(ENOSPC);
  UniqueFd fd = request.fds.empty() ? UniqueFd() : std::move(request.fds[0]);
  auto r = device_->dma().map(Iova(map->address), map->size, map->flags & kDmaMapRead,
                              map->flags & kDmaMapWrite, std::move(fd), map->offset);
  if (!r.ok()) {
    spdlog::warn("vfio-user server: DMA_MAP {:#x}+{:#x}: {}", uint64_t{map->address},
                 uint64_t{map->size}, r.error().message());
    return Reply::failure(errno_for(r.error()));
  }
  return Reply{};
}

Reply VfioUserServer::on_dma_unmap(std::span<const uint8_t> payload) {
  auto unmap = read_struct<DmaUnmap>(payload, "DMA_UNMAP");
  if (!unmap.ok()) return Reply::failure(EINVAL);
  if (unmap->flags != 0) return Reply::failure(ENOTSUP);  // no dirty page tracking here
  auto r = device_->dma().unmap(Iova(unmap->address), unmap->size);
  if (!r.ok()) return Reply::failure(errno_for(r.error()));
  return Reply{0, echo_of(payload, sizeof(DmaUnmap)), {}};
}

Reply VfioUserServer::on_region_info(std::span<const uint8_t> payload) {
  auto in = read_struct<vfio_region_info>(payload, "GET_REGION_INFO");
  if (!in.ok() || in->argsz < sizeof(vfio_region_info) || in->index >= VFIO_PCI_NUM_REGIONS) {
    return Reply::failure(EINVAL);
  }
  RegionInfo info;
  info.index = in->index;
  info.size = region_size(in->index);
  if (info.size) info.flags = VFIO_REGION_INFO_FLAG_READ | VFIO_REGION_INFO_FLAG_WRITE;
  Reply r;
  if (in->index == VFIO_PCI_BAR2_REGION_INDEX) {
    info.flags |= VFIO_REGION_INFO_FLAG_MMAP;
    info.mmap_areas.push_back({0, kBar2Size});
    r.fds.push_back(device_->bar2_fd());
  }
  r.payload = encode_region_info(info, in->argsz);
  return r;
}

// The index of the device's message-signalled interrupt, or none (VFIO_PCI_NUM_IRQS) with INTx.
uint32_t VfioUserServer::message_irq_index() const {
  if (device_->intx()) return VFIO_PCI_NUM_IRQS;
  return device_->msi() ? VFIO_PCI_MSI_IRQ_INDEX : VFIO_PCI_MSIX_IRQ_INDEX;
}

Reply VfioUserServer::on_irq_info(std::span<const uint8_t> payload) {
  auto in = read_struct<vfio_irq_info>(payload, "GET_IRQ_INFO");
  if (!in.ok() || in->argsz < sizeof(vfio_irq_info) || in->index >= VFIO_PCI_NUM_IRQS) {
    return Reply::failure(EINVAL);
  }
  vfio_irq_info info{sizeof(vfio_irq_info), 0, in->index, 0};
  if (in->index == VFIO_PCI_ERR_IRQ_INDEX || in->index == message_irq_index()) {
    info.flags = VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_NORESIZE;
    info.count = 1;
  } else if (in->index == VFIO_PCI_INTX_IRQ_INDEX && device_->intx()) {
    info.flags = VFIO_IRQ_INFO_EVENTFD | VFIO_IRQ_INFO_MASKABLE | VFIO_IRQ_INFO_AUTOMASKED;
    info.count = 1;
  }
  Reply r;
  append(r.payload, info);
  return r;
}

Reply VfioUserServer::on_set_irqs(Message& request) {
  auto set = read_struct<IrqSet>(request.payload, "SET_IRQS");
  if (!set.ok() || set->argsz != request.payload.size()) return Reply::failure(EINVAL);
  uint32_t data = set->flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
  uint32_t action = set->flags & VFIO_IRQ_SET_ACTION_TYPE_MASK;
  bool intx = set->index == VFIO_PCI_INTX_IRQ_INDEX && device_->intx();
  bool known = set->index == VFIO_PCI_ERR_IRQ_INDEX || intx || set->index == message_irq_index();
  if (!known || (data & (data - 1)) != 0 || set->start + uint64_t{set->count} > 1) {
    return Reply::failure(EINVAL);
  }
  size_t extra = request.payload.size() - sizeof(IrqSet);
  if (action != VFIO_IRQ_SET_ACTION_TRIGGER) {
    // Masking is INTx's alone (VFIO_IRQ_INFO_MASKABLE); eventfds for it are not supported.
    bool mask = action == VFIO_IRQ_SET_ACTION_MASK;
    if (!intx || (!mask && action != VFIO_IRQ_SET_ACTION_UNMASK)) return Reply::failure(EINVAL);
    if (data == VFIO_IRQ_SET_DATA_NONE && extra == 0 && request.fds.empty()) {
      if (set->count == 1) device_->set_intx_masked(mask);
    } else if (data == VFIO_IRQ_SET_DATA_BOOL && extra == set->count && request.fds.empty()) {
      if (set->count == 1 && request.payload.back()) device_->set_intx_masked(mask);
    } else {
      return Reply::failure(EINVAL);
    }
    return Reply{};
  }
  return trigger_irqs(*set, request, extra);
}

Reply VfioUserServer::trigger_irqs(const IrqSet& set, Message& request, size_t extra) {
  auto connect = [&](UniqueFd fd) {
    switch (set.index) {
      case VFIO_PCI_MSI_IRQ_INDEX:
      case VFIO_PCI_MSIX_IRQ_INDEX:
        return device_->set_msi_eventfd(std::move(fd));
      case VFIO_PCI_INTX_IRQ_INDEX:
        return device_->set_intx_eventfd(std::move(fd));
      default:
        return device_->set_err_eventfd(std::move(fd));
    }
  };
  auto fire = [&] {
    switch (set.index) {
      case VFIO_PCI_MSI_IRQ_INDEX:
      case VFIO_PCI_MSIX_IRQ_INDEX:
        return device_->trigger_msi();
      case VFIO_PCI_INTX_IRQ_INDEX:
        return device_->trigger_intx();
      default:
        return device_->trigger_err();
    }
  };
  uint32_t data = set.flags & VFIO_IRQ_SET_DATA_TYPE_MASK;
  if (data == VFIO_IRQ_SET_DATA_EVENTFD) {
    if (extra != 0 || request.fds.size() > set.count) return Reply::failure(EINVAL);
    connect(request.fds.empty() ? UniqueFd() : std::move(request.fds[0]));
  } else if (data == VFIO_IRQ_SET_DATA_NONE) {
    if (extra != 0 || !request.fds.empty()) return Reply::failure(EINVAL);
    if (set.count == 0)
      connect(UniqueFd());
    else
      fire();
  } else if (data == VFIO_IRQ_SET_DATA_BOOL) {
    if (extra != set.count || !request.fds.empty()) return Reply::failure(EINVAL);
    if (set.count == 1 && request.payload.back()) fire();
  } else {
    return Reply::failure(EINVAL);
  }
  return Reply{};
}

Reply VfioUserServer::on_region_access(std::span<const uint8_t> payload, bool write) {
  auto access = read_struct<RegionAccess>(payload, write ? "REGION_WRITE" : "REGION_READ");
  if (!access.ok()) return Reply::failure(EINVAL);
  uint64_t size = region_size(access->region);
  size_t data_size = payload.size() - sizeof(RegionAccess);
  if (access->count == 0 || access->count > kMaxDataXferSize || access->offset >= size ||
      access->count > size - access->offset || (write && data_size != access->count) ||
      (!write && data_size != 0)) {
    return Reply::failure(EINVAL);
  }
  Reply r;
  append(r.payload, *access);
  if (write) {
    auto data = payload.subspan(sizeof(RegionAccess));
    switch (access->region) {
      case VFIO_PCI_BAR0_REGION_INDEX:
        device_->bar0_write(access->offset, data);
        break;
      case VFIO_PCI_BAR2_REGION_INDEX:
        device_->bar2_write(access->offset, data);
        break;
      default:
        device_->config_write(access->offset, data);
        break;
    }
    return r;
  }
  r.payload.resize(sizeof(RegionAccess) + access->count);
  std::span<uint8_t> out(r.payload.data() + sizeof(RegionAccess), access->count);
  switch (access->region) {
    case VFIO_PCI_BAR0_REGION_INDEX:
      device_->bar0_read(access->offset, out);
      break;
    case VFIO_PCI_BAR2_REGION_INDEX:
      device_->bar2_read(access->offset, out);
      break;
    default:
      device_->config_read(access->offset, out);
      break;
  }
  return r;
}

}  // namespace ioasis::devices::vfio_user
