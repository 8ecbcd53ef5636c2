// The vfio-user wire protocol: the message header, the command numbers and every message body
// ioasis sends or accepts. Source: QEMU docs/interop/vfio-user.rst (protocol version 0.1),
// sections "Header", "Commands" and one section per command. Where the spec says a body is a
// <linux/vfio.h> structure (vfio_device_info, vfio_region_info, vfio_irq_info, vfio_irq_set)
// the kernel's struct is used as is, so the layouts cannot drift apart.
//
// Everything here is plain data. Parsing and validation live in vfio_user_socket.cc (framing)
// and in the client and server (bodies).
#pragma once

#include <linux/vfio.h>

#include <cstddef>
#include <cstdint>

namespace ioasis::devices::vfio_user {

inline constexpr uint16_t kVersionMajor = 0;
inline constexpr uint16_t kVersionMinor = 1;

// "Commands" table.
enum class Command : uint16_t {
  kVersion = 1,
  kDmaMap = 2,
  kDmaUnmap = 3,
  kDeviceGetInfo = 4,
  kDeviceGetRegionInfo = 5,
  kDeviceGetRegionIoFds = 6,
  kDeviceGetIrqInfo = 7,
  kDeviceSetIrqs = 8,
  kRegionRead = 9,
  kRegionWrite = 10,
  kDmaRead = 11,
  kDmaWrite = 12,
  kDeviceReset = 13,
  kDirtyPages = 14,
};
const char* command_name(uint16_t command);

// "Header": flags bits 0-3 are the type, bit 4 asks for no reply, bit 5 marks an error reply
// whose `error` field carries an errno.
inline constexpr uint32_t kFlagsTypeMask = 0xf;
inline constexpr uint32_t kTypeCommand = 0x0;
inline constexpr uint32_t kTypeReply = 0x1;
inline constexpr uint32_t kFlagNoReply = 1u << 4;
inline constexpr uint32_t kFlagError = 1u << 5;

struct [[gnu::packed]] Header {
  uint16_t msg_id;
  uint16_t command;
  uint32_t msg_size;  // the whole message, header included
  uint32_t flags;
  uint32_t error;
};
static_assert(sizeof(Header) == 16);
static_assert(offsetof(Header, msg_size) == 4);
static_assert(offsetof(Header, flags) == 8);
static_assert(offsetof(Header, error) == 12);

// "VFIO_USER_VERSION": followed by NUL-terminated JSON ({"capabilities": {...}}).
struct [[gnu::packed]] Version {
  uint16_t major;
  uint16_t minor;
};
static_assert(sizeof(Version) == 4);

// Capability defaults when the peer does not state them ("VFIO_USER_VERSION", Capabilities).
inline constexpr uint32_t kDefaultMaxMsgFds = 1;
inline constexpr uint64_t kDefaultMaxDataXferSize = 1 << 20;

// "VFIO_USER_DMA_MAP". The memory's fd, when it can be mmapped, travels as SCM_RIGHTS.
inline constexpr uint32_t kDmaMapRead = 1u << 0;
inline constexpr uint32_t kDmaMapWrite = 1u << 1;
struct [[gnu::packed]] DmaMap {
  uint32_t argsz;
  uint32_t flags;
  uint64_t offset;   // into the fd
  uint64_t address;  // the IOVA
  uint64_t size;
};
static_assert(sizeof(DmaMap) == 32);
static_assert(offsetof(DmaMap, address) == 16);

// "VFIO_USER_DMA_UNMAP". The reply echoes the request. Bit 0 asks for a dirty bitmap, which
// ioasis neither sends nor serves.
inline constexpr uint32_t kDmaUnmapGetDirtyBitmap = 1u << 0;
struct [[gnu::packed]] DmaUnmap {
  uint32_t argsz;
  uint32_t flags;
  uint64_t address;
  uint64_t size;
};
static_assert(sizeof(DmaUnmap) == 24);
static_assert(offsetof(DmaUnmap, address) == 8);

// "VFIO_USER_DEVICE_GET_INFO", "..._GET_REGION_INFO", "..._GET_IRQ_INFO", "..._SET_IRQS": the
// bodies are the <linux/vfio.h> structures; these asserts pin the sizes the spec gives.
// The spec's device info is the first 16 bytes of vfio_device_info (newer kernels append
// cap_offset), so it has its own struct.
struct [[gnu::packed]] DeviceInfo {
  uint32_t argsz;
  uint32_t flags;  // VFIO_DEVICE_FLAGS_RESET, VFIO_DEVICE_FLAGS_PCI
  uint32_t num_regions;
  uint32_t num_irqs;
};
static_assert(sizeof(DeviceInfo) == 16);
static_assert(offsetof(DeviceInfo, num_irqs) == 12);
static_assert(sizeof(vfio_region_info) == 32);
static_assert(offsetof(vfio_region_info, size) == 16);
static_assert(offsetof(vfio_region_info, offset) == 24);
static_assert(sizeof(vfio_irq_info) == 16);
static_assert(offsetof(vfio_irq_info, count) == 12);
// vfio_irq_set without its flexible `data` array (eventfds travel as SCM_RIGHTS instead).
struct [[gnu::packed]] IrqSet {
  uint32_t argsz;
  uint32_t flags;  // VFIO_IRQ_SET_DATA_* | VFIO_IRQ_SET_ACTION_*
  uint32_t index;
  uint32_t start;
  uint32_t count;
};
static_assert(sizeof(IrqSet) == sizeof(vfio_irq_set));
static_assert(offsetof(IrqSet, count) == offsetof(vfio_irq_set, count));
static_assert(sizeof(vfio_info_cap_header) == 8);
// vfio_region_info_cap_sparse_mmap without its flexible array, which C++ cannot hold by value.
struct [[gnu::packed]] SparseMmapCapability {
  vfio_info_cap_header header;  // id VFIO_REGION_INFO_CAP_SPARSE_MMAP, version 1
  uint32_t nr_areas;
  uint32_t reserved;
};
static_assert(sizeof(SparseMmapCapability) == sizeof(vfio_region_info_cap_sparse_mmap));
static_assert(offsetof(SparseMmapCapability, nr_areas) ==
              offsetof(vfio_region_info_cap_sparse_mmap, nr_areas));
static_assert(sizeof(vfio_region_sparse_mmap_area) == 16);

// "VFIO_USER_REGION_READ" / "..._WRITE": followed by `count` data bytes in the read reply and
// in the write request.
struct [[gnu::packed]] RegionAccess {
  uint64_t offset;
  uint32_t region;
  uint32_t count;
};
static_assert(sizeof(RegionAccess) == 16);
static_assert(offsetof(RegionAccess, count) == 12);

// "VFIO_USER_DMA_READ" / "..._WRITE" (server to client): followed by `count` data bytes in the
// read reply and in the write request. The spec prints the write reply's count as 4 bytes; both
// peers in the wild send 8, and a receiver here accepts either.
struct [[gnu::packed]] DmaAccess {
  uint64_t address;
  uint64_t count;
};
static_assert(sizeof(DmaAccess) == 16);
inline constexpr uint32_t kDmaWriteReplyMinSize = 12;

// An ioasis convention, not part of vfio-user: a server that shares its isolation with other
// functions (the host IOMMU could not tell them apart) says so with a vendor-specific PCI
// capability (ID 0x09, PCI LB 3.0 section 6.7 and appendix H) in its config space. Functions
// with the same group must be given the same address space.
inline constexpr uint8_t kCapIdVendor = 0x09;
inline constexpr uint8_t kVendorCapIsolationGroup = 0x47;  // 'G'
struct [[gnu::packed]] IsolationGroupCapability {
  uint8_t cap_id;  // kCapIdVendor
  uint8_t next;
  uint8_t length;  // sizeof(IsolationGroupCapability)
  uint8_t kind;    // kVendorCapIsolationGroup
  uint32_t reserved;
  uint64_t group;
};
static_assert(sizeof(IsolationGroupCapability) == 16);
static_assert(offsetof(IsolationGroupCapability, group) == 8);

// Limits ioasis applies to every peer: a message larger than a transfer plus its header, or
// with more fds, is a protocol error and ends the connection.
inline constexpr uint32_t kMaxDataXferSize = 1 << 20;
inline constexpr uint32_t kMaxMessageSize = sizeof(Header) + 64 + kMaxDataXferSize;
inline constexpr uint32_t kMaxMsgFds = 8;

}  // namespace ioasis::devices::vfio_user
