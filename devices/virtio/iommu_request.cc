#include "devices/virtio/iommu_request.h"

#include <algorithm>
#include <cstring>

namespace ioasis::devices::virtio_iommu {

const char* status_name(uint8_t status) {
  switch (status) {
    case kSOk:
      return "S_OK";
    case kSIoErr:
      return "S_IOERR";
    case kSUnsupp:
      return "S_UNSUPP";
    case kSDevErr:
      return "S_DEVERR";
    case kSInval:
      return "S_INVAL";
    case kSRange:
      return "S_RANGE";
    case kSNoEnt:
      return "S_NOENT";
    case kSFault:
      return "S_FAULT";
    case kSNoMem:
      return "S_NOMEM";
  }
  return "S_?";
}

namespace {

template <size_t N>
bool any_set(const uint8_t (&bytes)[N]) {
  return std::any_of(bytes, bytes + N, [](uint8_t b) { return b != 0; });
}

// Copies the body out of guest bytes so that nothing later reads guest memory twice.
template <typename Body>
std::optional<Body> read_body(std::span<const uint8_t> readable) {
  if (readable.size() < sizeof(Body)) return std::nullopt;
  Body body;
  std::memcpy(&body, readable.data(), sizeof(Body));
  return body;
}

Request to_request(const AttachBody& b) {
  return AttachRequest{b.domain, b.endpoint, b.flags, any_set(b.reserved)};
}
// DETACH and PROBE reserved bytes are ignored: the spec says the device MUST ignore them.
Request to_request(const DetachBody& b) { return DetachRequest{b.domain, b.endpoint}; }
Request to_request(const MapBody& b) {
  return MapRequest{b.domain, b.virt_start, b.virt_end, b.phys_start, b.flags};
}
Request to_request(const UnmapBody& b) {
  return UnmapRequest{b.domain, b.virt_start, b.virt_end, any_set(b.reserved)};
}
Request to_request(const ProbeBody& b) { return ProbeRequest{b.endpoint}; }

template <typename Body>
ParsedRequest parse_body(std::span<const uint8_t> readable, size_t tail_offset) {
  ParsedRequest out;
  out.tail_offset = tail_offset;
  // A body shorter than its type still leaves the tail findable in the writable part, so the
  // driver gets S_INVAL instead of silence. Longer bodies are accepted: extra bytes are room
  // for future extensions of the device-readable part.
  if (auto body = read_body<Body>(readable)) {
    out.request = to_request(*body);
  } else {
    out.status = kSInval;
  }
  return out;
}

}  // namespace

std::optional<ParsedRequest> parse_request(std::span<const uint8_t> readable, size_t writable,
                                           uint32_t probe_size) {
  if (readable.size() < sizeof(ReqHead) || writable < sizeof(ReqTail)) return std::nullopt;
  switch (readable[0]) {
    case kTAttach:
      return parse_body<AttachBody>(readable, 0);
    case kTDetach:
      return parse_body<DetachBody>(readable, 0);
    case kTMap:
      return parse_body<MapBody>(readable, 0);
    case kTUnmap:
      return parse_body<UnmapBody>(readable, 0);
    case kTProbe: {
      uint64_t full = uint64_t{probe_size} + sizeof(ReqTail);
      if (writable < full) {
        // Properties smaller than probe_size: refuse without writing any property, with the
        // tail at the end of what the driver gave.
        ParsedRequest out = parse_body<ProbeBody>(readable, writable - sizeof(ReqTail));
        out.status = kSInval;
        return out;
      }
      return parse_body<ProbeBody>(readable, probe_size);
    }
    default:
      return std::nullopt;
  }
}

Reply status_reply(size_t tail_offset, uint8_t status) {
  Reply r;
  r.offset = tail_offset;
  r.bytes.assign(sizeof(ReqTail), 0);
  r.bytes[0] = status;
  return r;
}

}  // namespace ioasis::devices::virtio_iommu
