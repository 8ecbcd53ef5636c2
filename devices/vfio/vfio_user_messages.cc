#include "devices/vfio/vfio_user_messages.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>

#include "base/address.h"
#include "devices/vfio/vfio_user_socket.h"

namespace ioasis::devices::vfio_user {

namespace {

Error malformed(const std::string& what) { return Error(Errc::kInvalidArgument, what); }

// Reads an unsigned JSON number, rejecting other types and values above `max`.
Result<std::optional<uint64_t>> json_uint(const nlohmann::json& object, const char* key,
                                          uint64_t max) {
  auto it = object.find(key);
  if (it == object.end()) return std::optional<uint64_t>();
  if (!it->is_number_unsigned() || it->get<uint64_t>() > max) {
    return malformed(fmt::format("VERSION capability {} is not a number up to {}", key, max));
  }
  return std::optional<uint64_t>(it->get<uint64_t>());
}

}  // namespace

std::vector<uint8_t> encode_version(const VersionMessage& version) {
  nlohmann::json caps = {{"max_msg_fds", version.capabilities.max_msg_fds},
                         {"max_data_xfer_size", version.capabilities.max_data_xfer_size}};
  if (version.capabilities.pgsizes) caps["pgsizes"] = *version.capabilities.pgsizes;
  if (version.capabilities.max_dma_maps) caps["max_dma_maps"] = *version.capabilities.max_dma_maps;
  std::string json = nlohmann::json{{"capabilities", caps}}.dump();
  std::vector<uint8_t> out;
  append(out, Version{version.major, version.minor});
  out.insert(out.end(), json.begin(), json.end());
  out.push_back(0);
  return out;
}

Result<VersionMessage> parse_version(std::span<const uint8_t> payload) {
  IOASIS_ASSIGN_OR_RETURN(Version v, read_struct<Version>(payload, "VERSION"));
  VersionMessage out;
  out.major = v.major;
  out.minor = v.minor;
  auto data = payload.subspan(sizeof(Version));
  if (data.empty()) return out;
  if (data.back() != 0) return malformed("VERSION data is not NUL-terminated");
  auto json = nlohmann::json::parse(data.begin(), data.end() - 1, nullptr, false);
  if (json.is_discarded() || !json.is_object()) return malformed("VERSION data is not JSON");
  auto caps = json.find("capabilities");
  if (caps == json.end()) return out;
  if (!caps->is_object()) return malformed("VERSION capabilities is not an object");
  IOASIS_ASSIGN_OR_RETURN(auto fds, json_uint(*caps, "max_msg_fds", 1024));
  IOASIS_ASSIGN_OR_RETURN(auto xfer, json_uint(*caps, "max_data_xfer_size", UINT32_MAX));
  IOASIS_ASSIGN_OR_RETURN(auto pgsizes, json_uint(*caps, "pgsizes", UINT64_MAX));
  IOASIS_ASSIGN_OR_RETURN(auto maps, json_uint(*caps, "max_dma_maps", UINT32_MAX));
  if (fds) out.capabilities.max_msg_fds = static_cast<uint32_t>(*fds);
  if (xfer) out.capabilities.max_data_xfer_size = *xfer;
  out.capabilities.pgsizes = pgsizes;
  if (maps) out.capabilities.max_dma_maps = static_cast<uint32_t>(*maps);
  return out;
}

namespace {

// Walks the capability chain of a region info reply (vfio_info_cap_header, <linux/vfio.h>) and
// collects the sparse mmap areas. Every offset is checked against the payload before use and
// the walk is bounded, so a looping chain ends.
Result<std::vector<MmapArea>> parse_sparse_areas(std::span<const uint8_t> payload,
                                                 uint32_t cap_offset, uint64_t region_size) {
  std::vector<MmapArea> areas;
  for (int hops = 0; cap_offset != 0; ++hops) {
    if (hops >= 16 || cap_offset < sizeof(vfio_region_info) || cap_offset >= payload.size()) {
      return malformed(fmt::format("region capability at {} is out of the reply", cap_offset));
    }
    IOASIS_ASSIGN_OR_RETURN(auto header, read_struct<vfio_info_cap_header>(
                                             payload.subspan(cap_offset), "region capability"));
    if (header.id == VFIO_REGION_INFO_CAP_SPARSE_MMAP) {
      IOASIS_ASSIGN_OR_RETURN(
          auto sparse,
          read_struct<SparseMmapCapability>(payload.subspan(cap_offset), "sparse mmap capability"));
      auto array = payload.subspan(cap_offset + sizeof(sparse));
      if (sparse.nr_areas > 64 ||
          array.size() < sparse.nr_areas * sizeof(vfio_region_sparse_mmap_area)) {
        return malformed("sparse mmap capability is cut short");
      }
      for (uint32_t i = 0; i < sparse.nr_areas; ++i) {
        vfio_region_sparse_mmap_area a;
        std::memcpy(&a, array.data() + i * sizeof(a), sizeof(a));
        if (!range_fits(a.offset, a.size) || a.offset + a.size > region_size) {
          return malformed("sparse mmap area lies outside its region");
        }
        areas.push_back({a.offset, a.size});
      }
    }
    cap_offset = header.next;
  }
  return areas;
}

}  // namespace

Result<RegionInfo> parse_region_info(std::span<const uint8_t> payload, uint32_t index,
                                     size_t fd_count) {
  IOASIS_ASSIGN_OR_RETURN(auto raw, read_struct<vfio_region_info>(payload, "GET_REGION_INFO"));
  if (raw.index != index) {
    return malformed(fmt::format("GET_REGION_INFO answered region {} for {}", raw.index, index));
  }
  RegionInfo info{raw.index, raw.flags, raw.size, raw.offset, {}};
  bool mmap = raw.flags & VFIO_REGION_INFO_FLAG_MMAP;
  if (fd_count != (mmap ? 1u : 0u)) {
    return malformed(
        fmt::format("GET_REGION_INFO for region {} came with {} fds", index, fd_count));
  }
  if (!mmap) return info;
  if ((raw.flags & VFIO_REGION_INFO_FLAG_CAPS) && raw.cap_offset != 0) {
    IOASIS_ASSIGN_OR_RETURN(info.mmap_areas, parse_sparse_areas(payload, raw.cap_offset, raw.size));
  } else {
    info.mmap_areas.push_back({0, raw.size});
  }
  return info;
}

std::vector<uint8_t> encode_region_info(const RegionInfo& info, uint32_t max_size) {
  vfio_region_info raw{};
  raw.index = info.index;
  raw.flags = info.flags;
  raw.size = info.size;
  raw.offset = info.mmap_offset;
  bool sparse = info.mmappable() && !info.mmap_areas.empty();
  uint32_t full = sizeof(raw);
  if (sparse) {
    full += sizeof(SparseMmapCapability) +
            info.mmap_areas.size() * sizeof(vfio_region_sparse_mmap_area);
  }
  raw.argsz = full;
  std::vector<uint8_t> out;
  // A client whose argsz is too small learns the size it needs and gets the fixed part only.
  if (!sparse || max_size < full) {
    raw.flags &= ~VFIO_REGION_INFO_FLAG_CAPS;
    append(out, raw);
    return out;
  }
  raw.flags |= VFIO_REGION_INFO_FLAG_CAPS;
  raw.cap_offset = sizeof(raw);
  append(out, raw);
  SparseMmapCapability cap{};
  cap.header.id = VFIO_REGION_INFO_CAP_SPARSE_MMAP;
  cap.header.version = 1;
  cap.nr_areas = static_cast<uint32_t>(info.mmap_areas.size());
  append(out, cap);
  for (const MmapArea& a : info.mmap_areas) {
    append(out, vfio_region_sparse_mmap_area{a.offset, a.size});
  }
  return out;
}

Result<DeviceInfo> parse_device_info(std::span<const uint8_t> payload) {
  IOASIS_ASSIGN_OR_RETURN(auto info, read_struct<DeviceInfo>(payload, "DEVICE_GET_INFO"));
  if (info.num_regions > 64 || info.num_irqs > 64) {
    return malformed(fmt::format("DEVICE_GET_INFO claims {} regions and {} irqs",
                                 uint32_t{info.num_regions}, uint32_t{info.num_irqs}));
  }
  return info;
}

Result<vfio_irq_info> parse_irq_info(std::span<const uint8_t> payload, uint32_t index) {
  IOASIS_ASSIGN_OR_RETURN(auto info, read_struct<vfio_irq_info>(payload, "GET_IRQ_INFO"));
  if (info.index != index) {
    return malformed(fmt::format("GET_IRQ_INFO answered index {} for {}", info.index, index));
  }
  if (info.count > 2048) return malformed(fmt::format("GET_IRQ_INFO count {}", info.count));
  return info;
}

Result<std::span<const uint8_t>> parse_region_read_reply(std::span<const uint8_t> payload,
                                                         const RegionAccess& request) {
  IOASIS_ASSIGN_OR_RETURN(auto echo, read_struct<RegionAccess>(payload, "REGION_READ"));
  if (echo.offset != request.offset || echo.region != request.region ||
      echo.count != request.count || payload.size() != sizeof(echo) + request.count) {
    return malformed(
        fmt::format("REGION_READ reply of {} bytes does not match the request", payload.size()));
  }
  return payload.subspan(sizeof(echo));
}

Result<void> parse_region_write_reply(std::span<const uint8_t> payload,
                                      const RegionAccess& request) {
  IOASIS_ASSIGN_OR_RETURN(auto echo, read_struct<RegionAccess>(payload, "REGION_WRITE"));
  if (echo.offset != request.offset || echo.region != request.region ||
      echo.count != request.count) {
    return malformed("REGION_WRITE reply does not match the request");
  }
  return {};
}

Result<std::span<const uint8_t>> parse_dma_read_reply(std::span<const uint8_t> payload,
                                                      const DmaAccess& request) {
  IOASIS_ASSIGN_OR_RETURN(auto echo, read_struct<DmaAccess>(payload, "DMA_READ"));
  if (echo.address != request.address || echo.count != request.count ||
      payload.size() != sizeof(echo) + request.count) {
    return malformed("DMA_READ reply does not match the request");
  }
  return payload.subspan(sizeof(echo));
}

Result<void> parse_dma_write_reply(std::span<const uint8_t> payload, const DmaAccess& request) {
  if (payload.size() < kDmaWriteReplyMinSize) return malformed("DMA_WRITE reply is too short");
  uint64_t address;
  uint32_t count;
  std::memcpy(&address, payload.data(), 8);
  std::memcpy(&count, payload.data() + 8, 4);  // the low half of an 8-byte count, too
  if (address != request.address || count != static_cast<uint32_t>(request.count)) {
    return malformed("DMA_WRITE reply does not match the request");
  }
  return {};
}

}  // namespace ioasis::devices::vfio_user
