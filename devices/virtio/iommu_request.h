// Parsing virtio-iommu requests (virtio 1.2 section 5.13.6) out of untrusted guest bytes.
//
// A request arrives as a device-readable part (head and body) and a device-writable part
// (properties for PROBE, then the tail). Parsing decides only what the bytes say: which request,
// where its tail goes, and whether it is malformed. Policy (domains, endpoints, ranges) belongs
// to the engine.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <variant>
#include <vector>

#include "devices/virtio/iommu_protocol.h"

namespace ioasis::devices::virtio_iommu {

struct AttachRequest {
  uint32_t domain = 0;
  uint32_t endpoint = 0;
  uint32_t flags = 0;
  bool reserved_set = false;  // non-zero reserved bytes, which the device must refuse
};

struct DetachRequest {
  uint32_t domain = 0;
  uint32_t endpoint = 0;
};

struct MapRequest {
  uint32_t domain = 0;
  uint64_t virt_start = 0;
  uint64_t virt_end = 0;  // inclusive
  uint64_t phys_start = 0;
  uint32_t flags = 0;
};

struct UnmapRequest {
  uint32_t domain = 0;
  uint64_t virt_start = 0;
  uint64_t virt_end = 0;  // inclusive
  bool reserved_set = false;
};

struct ProbeRequest {
  uint32_t endpoint = 0;
};

using Request = std::variant<AttachRequest, DetachRequest, MapRequest, UnmapRequest, ProbeRequest>;

struct ParsedRequest {
  // Offset of the tail inside the device-writable part. For PROBE the properties come first.
  size_t tail_offset = 0;
  // kSOk: execute `request`. Anything else: answer with this status without executing.
  uint8_t status = kSOk;
  Request request;
};

// Returns nothing when the device must not write the buffer: an unknown request type (the
// spec asks for used length 0) or a buffer without room for the tail. `probe_size` is the
// properties size the device advertises in its configuration.
std::optional<ParsedRequest> parse_request(std::span<const uint8_t> readable, size_t writable,
                                           uint32_t probe_size);

// Bytes to put into the device-writable part, starting at `offset`; the used length is
// offset + bytes.size().
struct Reply {
  size_t offset = 0;
  std::vector<uint8_t> bytes;

  size_t used_length() const { return offset + bytes.size(); }
  // The status byte of the tail, which is always the last four bytes.
  uint8_t status() const { return bytes.at(bytes.size() - sizeof(ReqTail)); }
};

// A reply that is only a tail.
Reply status_reply(size_t tail_offset, uint8_t status);

}  // namespace ioasis::devices::virtio_iommu
