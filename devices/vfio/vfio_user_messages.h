// Building and checking vfio-user message bodies. Every function that reads bytes from the peer
// is here, pure and free of I/O, so that the parsers can be fuzzed on their own and the client
// and server share one reading of the spec.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "devices/vfio/vfio_user_protocol.h"

namespace ioasis::devices::vfio_user {

// What a peer states in its VERSION message.
struct Capabilities {
  uint32_t max_msg_fds = kDefaultMaxMsgFds;
  uint64_t max_data_xfer_size = kDefaultMaxDataXferSize;
  std::optional<uint64_t> pgsizes;       // supported IOMMU page sizes, a bit per size
  std::optional<uint32_t> max_dma_maps;  // how many DMA_MAP regions the server keeps
};

struct VersionMessage {
  uint16_t major = kVersionMajor;
  uint16_t minor = kVersionMinor;
  Capabilities capabilities;
};

std::vector<uint8_t> encode_version(const VersionMessage& version);
Result<VersionMessage> parse_version(std::span<const uint8_t> payload);

// A contiguous part of a region that can be mmapped (a sparse mmap area, or the whole region).
struct MmapArea {
  uint64_t offset = 0;
  uint64_t size = 0;
};

struct RegionInfo {
  uint32_t index = 0;
  uint32_t flags = 0;  // VFIO_REGION_INFO_FLAG_*
  uint64_t size = 0;
  uint64_t mmap_offset = 0;          // the offset to give mmap() on the region's fd
  std::vector<MmapArea> mmap_areas;  // empty unless the region is mmappable

  bool readable() const { return flags & VFIO_REGION_INFO_FLAG_READ; }
  bool writable() const { return flags & VFIO_REGION_INFO_FLAG_WRITE; }
  bool mmappable() const { return flags & VFIO_REGION_INFO_FLAG_MMAP; }
};

// The server's reply to DEVICE_GET_REGION_INFO for `index`, which came with `fd_count` fds.
// A mmappable region must come with exactly one fd and its areas must lie inside the region.
Result<RegionInfo> parse_region_info(std::span<const uint8_t> payload, uint32_t index,
                                     size_t fd_count);
// The reply a server sends: vfio_region_info, then a sparse mmap capability when `areas` is
// given. `max_size` is the client's argsz: a longer reply is cut down to the fixed part.
std::vector<uint8_t> encode_region_info(const RegionInfo& info, uint32_t max_size);

Result<DeviceInfo> parse_device_info(std::span<const uint8_t> payload);
Result<vfio_irq_info> parse_irq_info(std::span<const uint8_t> payload, uint32_t index);

// The fixed part of a REGION_READ reply or a DMA_READ reply must echo the request and carry
// exactly `count` bytes.
Result<std::span<const uint8_t>> parse_region_read_reply(std::span<const uint8_t> payload,
                                                         const RegionAccess& request);
Result<void> parse_region_write_reply(std::span<const uint8_t> payload,
                                      const RegionAccess& request);
Result<std::span<const uint8_t>> parse_dma_read_reply(std::span<const uint8_t> payload,
                                                      const DmaAccess& request);
Result<void> parse_dma_write_reply(std::span<const uint8_t> payload, const DmaAccess& request);

// Appends the bytes of `value` to `out`.
template <typename T>
void append(std::vector<uint8_t>& out, const T& value) {
  auto p = reinterpret_cast<const uint8_t*>(&value);
  out.insert(out.end(), p, p + sizeof(T));
}

}  // namespace ioasis::devices::vfio_user
