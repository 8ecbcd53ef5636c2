// Vocabulary shared by the IOASID manager, its DMA backends and the devices that use it.
#pragma once

#include <compare>
#include <cstdint>
#include <string>

#include "base/address.h"

namespace ioasis::iommu {

// An I/O address space inside one IoasidContext.
struct IoasId {
  uint32_t value = 0;
  auto operator<=>(const IoasId&) const = default;
};

// A device that joined the context. Numbered by the context in join order.
struct DeviceId {
  uint32_t value = 0;
  auto operator<=>(const DeviceId&) const = default;
};

// An isolation group: devices the host IOMMU cannot tell apart (sysfs iommu_group for kernel
// VFIO, a declared group for vfio-user). Devices that share one must share an address space.
struct GroupId {
  uint64_t value = 0;
  auto operator<=>(const GroupId&) const = default;
};

// What a mapping lets a device do with the host memory behind it.
enum class Perm : uint8_t { kNone = 0, kRead = 1, kWrite = 2, kReadWrite = 3 };

constexpr Perm operator|(Perm a, Perm b) {
  return static_cast<Perm>(static_cast<uint8_t>(a) | static_cast<uint8_t>(b));
}
constexpr bool has_perm(Perm set, Perm wanted) {
  return (static_cast<uint8_t>(set) & static_cast<uint8_t>(wanted)) == static_cast<uint8_t>(wanted);
}

// Host memory handed to map(). Guest RAM is memfd-backed: fd and fd_offset travel with the
// mapping so that backends whose peer lives in another process (vfio-user, vhost-user) can pass
// the memory itself instead of copying through it.
struct HostRange {
  Hva hva;
  uint64_t length = 0;
  int fd = -1;
  uint64_t fd_offset = 0;
};

// An inclusive IOVA range, the form the iommufd uAPI uses: [first, last] can name all of 2^64.
struct IovaRange {
  Iova first;
  Iova last;
  auto operator<=>(const IovaRange&) const = default;
  uint64_t length() const { return last.value - first.value + 1; }  // 0 for the full space
  bool intersects(const IovaRange& o) const { return first <= o.last && o.first <= last; }
  bool contains(const IovaRange& o) const { return first <= o.first && o.last <= last; }
};

inline constexpr uint64_t kPageSize = 4096;

// The IOVA window and granule through which a backend lets a device do DMA.
struct Aperture {
  IovaRange range{Iova(0), Iova(UINT64_MAX)};
  uint64_t page_size = kPageSize;
};

std::string to_string(IovaRange r);
std::string to_string(Perm p);

}  // namespace ioasis::iommu
