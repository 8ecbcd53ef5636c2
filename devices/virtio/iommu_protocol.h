// The virtio-iommu wire format: virtio 1.2 section 5.13 "IOMMU Device" (the same layout in 1.3).
// All fields are little-endian, which is the host byte order on x86-64.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ioasis::devices::virtio_iommu {

// 5.13.1, 5.13.2
inline constexpr uint32_t kDeviceId = 23;
inline constexpr uint16_t kRequestQueue = 0;
inline constexpr uint16_t kEventQueue = 1;

// 5.13.3 feature bits. F_BYPASS (3) is deprecated by F_BYPASS_CONFIG and never offered.
inline constexpr uint64_t kFInputRange = 1ull << 0;
inline constexpr uint64_t kFDomainRange = 1ull << 1;
inline constexpr uint64_t kFMapUnmap = 1ull << 2;
inline constexpr uint64_t kFBypass = 1ull << 3;
inline constexpr uint64_t kFProbe = 1ull << 4;
inline constexpr uint64_t kFMmio = 1ull << 5;
inline constexpr uint64_t kFBypassConfig = 1ull << 6;
// 6 "Reserved Feature Bits"
inline constexpr uint64_t kFVersion1 = 1ull << 32;

// 5.13.4
struct [[gnu::packed]] Config {
  uint64_t page_size_mask;
  uint64_t input_start;
  uint64_t input_end;
  uint32_t domain_start;
  uint32_t domain_end;
  uint32_t probe_size;
  uint8_t bypass;
  uint8_t reserved[3];
};
static_assert(sizeof(Config) == 40);
static_assert(offsetof(Config, input_start) == 8);
static_assert(offsetof(Config, domain_start) == 24);
static_assert(offsetof(Config, probe_size) == 32);
static_assert(offsetof(Config, bypass) == 36);

// 5.13.6 request types and status codes
enum RequestType : uint8_t {
  kTAttach = 1,
  kTDetach = 2,
  kTMap = 3,
  kTUnmap = 4,
  kTProbe = 5,
};

enum Status : uint8_t {
  kSOk = 0,
  kSIoErr = 1,
  kSUnsupp = 2,
  kSDevErr = 3,
  kSInval = 4,
  kSRange = 5,
  kSNoEnt = 6,
  kSFault = 7,
  kSNoMem = 8,
};
const char* status_name(uint8_t status);

struct [[gnu::packed]] ReqHead {
  uint8_t type;
  uint8_t reserved[3];
};
static_assert(sizeof(ReqHead) == 4);

struct [[gnu::packed]] ReqTail {
  uint8_t status;
  uint8_t reserved[3];
};
static_assert(sizeof(ReqTail) == 4);

// The device-readable part of each request: the spec's structs without their tail, which lives
// in the device-writable part.

// 5.13.6.3
inline constexpr uint32_t kAttachFBypass = 1u << 0;
struct [[gnu::packed]] AttachBody {
  ReqHead head;
  uint32_t domain;
  uint32_t endpoint;
  uint32_t flags;
  uint8_t reserved[4];
};
static_assert(sizeof(AttachBody) == 20);
static_assert(offsetof(AttachBody, flags) == 12);

// 5.13.6.4
struct [[gnu::packed]] DetachBody {
  ReqHead head;
  uint32_t domain;
  uint32_t endpoint;
  uint8_t reserved[8];
};
static_assert(sizeof(DetachBody) == 20);

// 5.13.6.5
inline constexpr uint32_t kMapFRead = 1u << 0;
inline constexpr uint32_t kMapFWrite = 1u << 1;
inline constexpr uint32_t kMapFMmio = 1u << 2;
struct [[gnu::packed]] MapBody {
  ReqHead head;
  uint32_t domain;
  uint64_t virt_start;
  uint64_t virt_end;
  uint64_t phys_start;
  uint32_t flags;
};
static_assert(sizeof(MapBody) == 36);
static_assert(offsetof(MapBody, virt_start) == 8);
static_assert(offsetof(MapBody, phys_start) == 24);
static_assert(offsetof(MapBody, flags) == 32);

// 5.13.6.6
struct [[gnu::packed]] UnmapBody {
  ReqHead head;
  uint32_t domain;
  uint64_t virt_start;
  uint64_t virt_end;
  uint8_t reserved[4];
};
static_assert(sizeof(UnmapBody) == 28);
static_assert(offsetof(UnmapBody, reserved) == 24);

// 5.13.6.7: properties[probe_size] and the tail follow in the device-writable part.
struct [[gnu::packed]] ProbeBody {
  ReqHead head;
  uint32_t endpoint;
  uint8_t reserved[64];
};
static_assert(sizeof(ProbeBody) == 72);

// 5.13.6.7: type is 12 bits, the top 4 are reserved.
struct [[gnu::packed]] ProbeProperty {
  uint16_t type;
  uint16_t length;  // of the value after this header
};
static_assert(sizeof(ProbeProperty) == 4);
inline constexpr uint16_t kProbeTNone = 0;
inline constexpr uint16_t kProbeTResvMem = 1;

// 5.13.6.8.1
inline constexpr uint8_t kResvMemTReserved = 0;
inline constexpr uint8_t kResvMemTMsi = 1;
struct [[gnu::packed]] ProbeResvMem {
  ProbeProperty head;
  uint8_t subtype;
  uint8_t reserved[3];
  uint64_t start;
  uint64_t end;  // inclusive
};
static_assert(sizeof(ProbeResvMem) == 24);
static_assert(offsetof(ProbeResvMem, start) == 8);

// 5.13.6.9 fault reporting, written into event queue buffers.
enum FaultReason : uint8_t {
  kFaultRUnknown = 0,
  kFaultRDomain = 1,
  kFaultRMapping = 2,
};
inline constexpr uint32_t kFaultFRead = 1u << 0;
inline constexpr uint32_t kFaultFWrite = 1u << 1;
inline constexpr uint32_t kFaultFExec = 1u << 2;
inline constexpr uint32_t kFaultFAddress = 1u << 8;
struct [[gnu::packed]] FaultEvent {
  uint8_t reason;
  uint8_t reserved[3];
  uint32_t flags;
  uint32_t endpoint;
  uint32_t reserved1;
  uint64_t address;
};
static_assert(sizeof(FaultEvent) == 24);
static_assert(offsetof(FaultEvent, address) == 16);

}  // namespace ioasis::devices::virtio_iommu
